"""KV reservations that a prefill worker keeps after a request's last step.

In disaggregated serving the decode worker reads the prompt's KV from the prefill worker,
so the prefill worker may free it only after the transfer. Here the router confirms the
transfer with a release call. A hold without a release call is freed after a timeout,
so that a router that is gone cannot fill the KV cache for good.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

logger = logging.getLogger(__name__)

TIMEOUT_WARNING_INTERVAL_S = 10.0


class _Hold:
    __slots__ = ("kv_tokens", "timer")

    def __init__(self, kv_tokens: int, timer: asyncio.TimerHandle) -> None:
        self.kv_tokens = kv_tokens
        self.timer = timer


class KvHolds:
    """Held KV reservations by request id, each freed by release() or by its timeout.

    on_free is called with the KV tokens of every hold that ends, so the scheduler can
    return them to the cache. Two holds with the same request id (a client that reuses
    X-Request-Id) are released oldest first.
    """

    def __init__(self, timeout_s: float, on_free: Callable[[int], None]) -> None:
        if not timeout_s > 0:
            raise ValueError(f"KV hold timeout must be > 0 seconds, got {timeout_s!r}")
        self.timeout_s = timeout_s
        self._on_free = on_free
        self._holds: dict[str, deque[_Hold]] = {}
        self.num_held = 0
        self.timeouts_total = 0
        self._last_warning_s = float("-inf")

    def hold(self, request_id: str, kv_tokens: int) -> None:
        """Keep kv_tokens reserved for request_id until release() or the timeout."""
        loop = asyncio.get_running_loop()
        queue = self._holds.setdefault(request_id, deque())
        hold = _Hold(kv_tokens, loop.call_later(self.timeout_s, self._expire, request_id))
        queue.append(hold)
        self.num_held += 1

    def release(self, request_id: str) -> bool:
        """Free the oldest hold of request_id and return whether there was one."""
        hold = self._pop(request_id)
        if hold is None:
            return False
        hold.timer.cancel()
        self._on_free(hold.kv_tokens)
        return True

    def clear(self) -> None:
        """Drop every hold without calling on_free, for a scheduler that resets its KV."""
        for queue in self._holds.values():
            for hold in queue:
                hold.timer.cancel()
        self._holds.clear()
        self.num_held = 0

    def _pop(self, request_id: str) -> _Hold | None:
        queue = self._holds.get(request_id)
        if not queue:
            return None
        hold = queue.popleft()
        if not queue:
            del self._holds[request_id]
        self.num_held -= 1
        return hold

    def _expire(self, request_id: str) -> None:
        # Timers fire in the order they were set, so the expiring hold is the oldest one.
        hold = self._pop(request_id)
        if hold is None:
            return
        self.timeouts_total += 1
        now_s = time.monotonic()
        if now_s - self._last_warning_s >= TIMEOUT_WARNING_INTERVAL_S:
            self._last_warning_s = now_s
            logger.warning(
                "KV hold of request %s (%d tokens) timed out after %g s without a release "
                "call, so its KV is freed (%d timeouts so far). The router is slow or gone, "
                "or a client sent harness_kv_hold and never released",
                request_id, hold.kv_tokens, self.timeout_s, self.timeouts_total,
            )
        self._on_free(hold.kv_tokens)
