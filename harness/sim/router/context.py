"""State that the router's requests share: HTTP session, worker pools, counters, token log."""

import asyncio
import json
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from harness.sim.openai_format import Endpoint, error_body
from harness.sim.roles import KV_RELEASE_PATH
from harness.sim.router.metrics import RouterStats, Stage
from harness.sim.router.pool import WorkerPool
from harness.sim.router.transfer import KvTransferModel
from harness.sim.token_log import TokenLog

logger = logging.getLogger(__name__)

ENDPOINT_PATHS = {Endpoint.COMPLETIONS: "/v1/completions", Endpoint.CHAT: "/v1/chat/completions"}
# Errors of one worker are logged at most once per interval, with the count so far,
# because a worker that is down fails every request sent to it.
ERROR_LOG_INTERVAL_S = 10.0


class WorkerError(Exception):
    """A failed worker call: the HTTP status for the client and a message naming the worker."""

    def __init__(self, status: int, message: str, stage: Stage, url: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.stage = stage
        self.url = url


def describe(exc: BaseException) -> str:
    """Return an exception's message, or its type name for one without a message."""
    return str(exc) or type(exc).__name__


def worker_error(stage: Stage, url: str, status: int, payload: bytes) -> WorkerError:
    """Build the client's error for a worker's error response, with the worker's message."""
    try:
        worker_message = json.loads(payload)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        worker_message = payload[:200].decode(errors="replace")
    message = f"{stage.value} worker {url} returned HTTP {status}: {worker_message}"
    return WorkerError(status, message, stage, url)


def error_response(error: WorkerError) -> web.Response:
    return web.json_response(error_body(error.status, error.message), status=error.status)


@dataclass(frozen=True)
class PrefillResult:
    url: str
    # Id of the prefill worker's response, which names its KV hold.
    response_id: str
    prompt_tokens: int
    # time.perf_counter_ns() when the router received the prefill response.
    done_perf_ns: int


@dataclass
class RouterContext:
    model_name: str
    session: aiohttp.ClientSession
    prefill_pool: WorkerPool
    decode_pool: WorkerPool
    transfer: KvTransferModel
    token_log: TokenLog | None = None
    stats: RouterStats = field(default_factory=RouterStats)
    _background_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _worker_errors: dict[str, int] = field(default_factory=dict)
    _last_error_log_s: dict[str, float] = field(default_factory=dict)

    def release_kv_later(self, prefill: PrefillResult, request_id: str) -> None:
        """Ask the prefill worker to free the request's KV, without waiting for its response."""
        self._spawn(self._release_kv(prefill, request_id))

    async def close(self) -> None:
        """Wait for the KV releases still in flight, then close the session and token log."""
        if self._background_tasks:
            await asyncio.gather(*self._background_tasks, return_exceptions=True)
        await self.session.close()
        if self.token_log is not None:
            self.token_log.close()

    def log_worker_error(
        self, error: WorkerError, request_id: str, level: int | None = None
    ) -> None:
        """Log a worker error with the request id, at most once per interval per worker.

        The default level is WARNING for a 4xx status, which is the worker rejecting the
        client's request, and ERROR otherwise.
        """
        key = f"{error.stage.value} {error.url}"
        count = self._worker_errors[key] = self._worker_errors.get(key, 0) + 1
        now_s = time.monotonic()
        if now_s - self._last_error_log_s.get(key, float("-inf")) < ERROR_LOG_INTERVAL_S:
            return
        self._last_error_log_s[key] = now_s
        if level is None:
            level = logging.WARNING if 400 <= error.status < 500 else logging.ERROR
        logger.log(
            level, "Request %s: %s (%d errors from this worker so far)",
            request_id, error.message, count,
        )

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        # The event loop keeps only weak references to tasks.
        self._background_tasks.add(task)
        task.add_done_callback(self._background_tasks.discard)

    async def _release_kv(self, prefill: PrefillResult, request_id: str) -> None:
        url = prefill.url + KV_RELEASE_PATH
        try:
            async with self.session.post(url, json={"request_id": prefill.response_id}) as response:
                if response.status == 200:
                    return
                detail = f"HTTP {response.status}: {(await response.text())[:200]}"
        except aiohttp.ClientError as exc:
            detail = describe(exc)
        # The worker frees the KV when its hold times out, so the request itself is fine.
        message = f"KV release on prefill worker {prefill.url} failed, {detail}"
        error = WorkerError(502, message, Stage.PREFILL, prefill.url)
        self.log_worker_error(error, request_id, logging.WARNING)
