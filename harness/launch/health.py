"""Readiness: poll each worker's health and model-list endpoints until all answer."""

import logging
import time
import urllib.error
import urllib.request

from harness.errors import LaunchError
from harness.launch.processes import ManagedProcess, tail

logger = logging.getLogger(__name__)


def probe(url: str, timeout_s: float = 2.0) -> int | None:
    """GET url and return the HTTP status, or None when the connection fails."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


def wait_ready(
    targets: list[tuple[ManagedProcess, str]],
    paths: list[str],
    timeout_s: float,
    poll_interval_s: float,
) -> None:
    """Wait until every (process, base_url) answers 200 on every path.

    A process that exits while we wait fails at once with the tail of its log, because
    waiting out the timeout would only delay the same error.
    """
    pending = {process.name: (process, base_url) for process, base_url in targets}
    start = time.monotonic()
    while pending:
        for name, (process, base_url) in list(pending.items()):
            code = process.exit_code()
            if code is not None:
                raise LaunchError(
                    f"{name} exited with code {code} during start-up; last lines of "
                    f"{process.log_path}:\n{tail(process.log_path)}"
                )
            if all(probe(base_url + path) == 200 for path in paths):
                logger.info("%s is ready at %s after %.1f s", name, base_url, time.monotonic() - start)
                del pending[name]

        if not pending:
            return
        if time.monotonic() - start > timeout_s:
            names = ", ".join(sorted(pending))
            logs = ", ".join(str(process.log_path) for process, _ in pending.values())
            raise LaunchError(
                f"{names} not ready after {timeout_s:.0f} s (engine.readiness.timeout_s); "
                f"see {logs}"
            )
        time.sleep(poll_interval_s)
