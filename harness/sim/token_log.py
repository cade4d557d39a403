"""Ground-truth log of token emission times, one JSON line per finished request.

Each line is {"request_id", "prompt_tokens", "emit_perf_ns", "emit_wall_ns_first"}:
request_id is the response id that the client sees in every chunk ("cmpl-..." or
"chatcmpl-..."), emit_perf_ns lists time.perf_counter_ns() at the end of the step that
emitted each token, and emit_wall_ns_first is time.time_ns() at the first token that
the server emitted. A prefill worker's line has one token, and a decode worker's line has
max_tokens - 1 tokens because the first came from prefill. The router's lines add their
own fields (see harness/sim/router/relay.py) and stamp each token when it is forwarded. On
Linux perf_counter_ns reads CLOCK_MONOTONIC, which every process on the host shares, so a
load generator on the same machine can subtract its own perf_counter_ns stamps from
these values directly.
"""

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class EmittedRequest(Protocol):
    request_id: str
    prompt_tokens: int
    emit_perf_ns: list[int]
    emit_wall_ns_first: int | None


class TokenLog:
    """Append-only JSON-lines file of emission times, flushed once per engine step."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        self._unflushed = False

    def record(self, request: EmittedRequest, extra: Mapping[str, Any] | None = None) -> None:
        """Append the request's line, with the JSON-serialisable fields of extra after it."""
        entry = {
            "request_id": request.request_id,
            "prompt_tokens": request.prompt_tokens,
            "emit_perf_ns": request.emit_perf_ns,
            "emit_wall_ns_first": request.emit_wall_ns_first,
        }
        if extra is not None:
            entry.update(extra)
        line = json.dumps(entry, separators=(",", ":"))
        self._file.write(line + "\n")
        self._unflushed = True

    def flush(self) -> None:
        if self._unflushed:
            self._file.flush()
            self._unflushed = False

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
            logger.info("Closed token log %s", self.path)
