"""Readiness of a router or frontend: does its list of workers hold every worker?

Dynamo's frontend returns, for GET /health, JSON whose `instances` list has one object
per registered endpoint of each worker (`generate`, `clear_kv_blocks`, ...), so a point
is ready once the `generate` instances number at least its workers. The parsing is a
pure function; the poll uses the same direct connection as the other probes.
"""

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

# A direct connection: the router runs on the job's own nodes, where an HTTP proxy from
# the environment (http_proxy) would only get in the way.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def count_listed_workers(payload: Any, list_key: str, match: Mapping[str, str]) -> int:
    """Count the objects in payload[list_key] whose keys equal every value of match.

    A payload that is not a JSON object, or has no list under list_key, counts 0: a
    frontend returns that before any worker registers.
    """
    if not isinstance(payload, Mapping):
        return 0
    items = payload.get(list_key)
    if not isinstance(items, list):
        return 0
    return sum(
        1 for item in items
        if isinstance(item, Mapping) and all(str(item.get(key)) == value for key, value in match.items())
    )


def listed_workers(url: str, list_key: str, match: Mapping[str, str], timeout_s: float = 2.0) -> int | None:
    """GET url and count its listed workers; None when the request or the JSON fails."""
    try:
        with _OPENER.open(url, timeout=timeout_s) as response:
            body = response.read()
    except (urllib.error.URLError, OSError) as error:
        logger.debug("worker list %s not readable yet: %s", url, error)
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        logger.debug("worker list %s is not JSON: %.200r", url, body)
        return None
    return count_listed_workers(payload, list_key, match)
