"""Continuous-batching loop of the simulated engine.

One asyncio task runs engine steps back to back while any request is running. Before
each step it admits waiting requests first-come, first-served, as long as the KV cache
can reserve prompt + max_tokens tokens for each and fewer than max_running_requests run.
A step's duration comes from StepCostModel. The loop sleeps until the step's absolute
deadline (step start + step time), so sleep overshoot does not accumulate: the next step
starts at the previous deadline, not at the moment the loop woke up.

Tokens of a step are stamped with time.perf_counter_ns() once the step's sleep ends and
before any stream is written, then handed to each request's on_token callback.

A request with kv_hold (prefill role) leaves the batch after its last token but keeps its
KV reserved until release_kv() or the hold timeout (see kv_hold.py).
"""

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

from harness.errors import ConfigError
from harness.sim.kv_hold import KvHolds
from harness.sim.model import StepCostModel, plan_prefill_chunks
from harness.sim.request import RequestState, SimRequest
from harness.sim.stats import SchedulerStats
from harness.sim.token_log import TokenLog

logger = logging.getLogger(__name__)

# The loop can fall behind its schedule after a long pause, or when a step has more stream
# writes than the CPU keeps up with. Beyond this lag it restarts the schedule from the
# current time, because catching up would run a burst of zero-length steps.
MAX_SCHEDULE_LAG_NS = 20_000_000
SCHEDULE_WARNING_INTERVAL_NS = 10_000_000_000
DEFAULT_KV_HOLD_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class EngineLimits:
    max_running_requests: int
    chunked_prefill_size: int
    kv_capacity_tokens: int

    def __post_init__(self) -> None:
        for name in ("max_running_requests", "chunked_prefill_size", "kv_capacity_tokens"):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value}")


class Scheduler:
    """Admission queue and step loop, which run between start() and stop()."""

    def __init__(
        self,
        cost: StepCostModel,
        limits: EngineLimits,
        token_log: TokenLog | None = None,
        kv_hold_timeout_s: float = DEFAULT_KV_HOLD_TIMEOUT_S,
    ) -> None:
        self.cost = cost
        self.limits = limits
        self._token_log = token_log
        self._waiting: deque[SimRequest] = deque()
        self._running: list[SimRequest] = []
        self._num_waiting = 0
        self._num_running = 0
        self._kv_used_tokens = 0
        self._prompt_tokens_total = 0
        self._generation_tokens_total = 0
        self._request_success_total = 0
        self._steps_total = 0
        self._busy_ns_total = 0
        self._schedule_resets_total = 0
        self._last_lag_warning_ns = 0
        self._kv_holds = KvHolds(kv_hold_timeout_s, self._free_held_kv)
        self._work_available = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def is_running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sim-scheduler")
        self._task.add_done_callback(self._log_loop_exit)

    async def stop(self) -> None:
        """Stop the loop, abort every unfinished request and close the token log."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

        for request in [*self._waiting, *self._running]:
            if request.state in (RequestState.WAITING, RequestState.RUNNING):
                request.state = RequestState.ABORTED
                _resolve(request)
        self._waiting.clear()
        self._running.clear()
        self._kv_holds.clear()
        self._num_waiting = self._num_running = self._kv_used_tokens = 0

        if self._token_log is not None:
            self._token_log.flush()
            self._token_log.close()

    def submit(self, request: SimRequest) -> None:
        """Queue a request for admission, or abort it at once when the scheduler has stopped."""
        if request.kv_tokens > self.limits.kv_capacity_tokens:
            raise ValueError(
                f"request {request.request_id} needs {request.kv_tokens} KV tokens, more than "
                f"the capacity of {self.limits.kv_capacity_tokens}"
            )
        if self._stopped:
            request.state = RequestState.ABORTED
            _resolve(request)
            return
        self._waiting.append(request)
        self._num_waiting += 1
        self._work_available.set()

    def cancel(self, request: SimRequest) -> None:
        """Remove a waiting or running request and free its KV. Later calls do nothing."""
        if request.state is RequestState.WAITING:
            # The deque entry is skipped at admission rather than searched for here.
            self._num_waiting -= 1
        elif request.state is RequestState.RUNNING:
            self._num_running -= 1
            self._kv_used_tokens -= request.kv_tokens
        else:
            return
        request.state = RequestState.CANCELLED
        _resolve(request)
        logger.debug(
            "Cancelled request %s after %d tokens", request.request_id, request.generated_tokens
        )

    def release_kv(self, request_id: str) -> bool:
        """Free the held KV of a finished kv_hold request and return whether it was held."""
        return self._kv_holds.release(request_id)

    def _free_held_kv(self, kv_tokens: int) -> None:
        self._kv_used_tokens -= kv_tokens
        # Waiting requests may fit now, and an idle loop admits them only when woken.
        self._work_available.set()

    def stats(self) -> SchedulerStats:
        return SchedulerStats(
            num_requests_waiting=self._num_waiting,
            num_requests_running=self._num_running,
            kv_used_tokens=self._kv_used_tokens,
            kv_capacity_tokens=self.limits.kv_capacity_tokens,
            prompt_tokens_total=self._prompt_tokens_total,
            generation_tokens_total=self._generation_tokens_total,
            request_success_total=self._request_success_total,
            steps_total=self._steps_total,
            schedule_resets_total=self._schedule_resets_total,
            busy_ns_total=self._busy_ns_total,
            num_requests_kv_held=self._kv_holds.num_held,
            kv_hold_timeouts_total=self._kv_holds.timeouts_total,
        )

    async def _run(self) -> None:
        next_start_ns: int | None = None
        while True:
            self._admit()
            if not self._running:
                self._work_available.clear()
                await self._work_available.wait()
                next_start_ns = None
                continue

            start_ns = self._choose_step_start(next_start_ns, time.perf_counter_ns())
            prefill, decode, step_ns = self._plan_step()
            deadline_ns = start_ns + step_ns
            delay_ns = deadline_ns - time.perf_counter_ns()
            # NOTE: asyncio's epoll selector rounds timeouts up to whole milliseconds, so a
            # step's tokens are stamped up to about 1 ms after its deadline. The next step
            # still starts at the deadline, so mean step times stay exact.
            # sleep(0) still yields, so the HTTP side runs even when the loop is behind.
            await asyncio.sleep(delay_ns / 1e9 if delay_ns > 0 else 0)

            self._busy_ns_total += step_ns
            self._complete_step(prefill, decode)
            next_start_ns = deadline_ns

    def _admit(self) -> None:
        """Move waiting requests to running in arrival order until one does not fit."""
        if len(self._running) != self._num_running:
            self._running = [r for r in self._running if r.state is RequestState.RUNNING]

        waiting = self._waiting
        while waiting:
            head = waiting[0]
            if head.state is not RequestState.WAITING:
                waiting.popleft()
                continue
            if self._num_running >= self.limits.max_running_requests:
                break
            if self._kv_used_tokens + head.kv_tokens > self.limits.kv_capacity_tokens:
                break
            waiting.popleft()
            head.state = RequestState.RUNNING
            self._running.append(head)
            self._num_waiting -= 1
            self._num_running += 1
            self._kv_used_tokens += head.kv_tokens

    def _choose_step_start(self, next_start_ns: int | None, now_ns: int) -> int:
        if next_start_ns is None:
            return now_ns
        lag_ns = now_ns - next_start_ns
        if lag_ns <= MAX_SCHEDULE_LAG_NS:
            return next_start_ns

        self._schedule_resets_total += 1
        if now_ns - self._last_lag_warning_ns >= SCHEDULE_WARNING_INTERVAL_NS:
            self._last_lag_warning_ns = now_ns
            logger.warning(
                "Step loop fell %.1f ms behind its schedule and restarted it (%d times so far). "
                "Emitted tokens are late against the step model, so use fewer streams or a "
                "faster CPU for timing-sensitive runs",
                lag_ns / 1e6, self._schedule_resets_total,
            )
        return now_ns

    def _plan_step(self) -> tuple[list[tuple[SimRequest, int]], list[SimRequest], int]:
        """Pick the step's prefill chunks and decode sequences and return its length in ns."""
        prefilling: list[SimRequest] = []
        decode: list[SimRequest] = []
        decode_context_tokens = 0
        for request in self._running:
            if request.prefilled_tokens < request.prompt_tokens:
                prefilling.append(request)
            else:
                decode.append(request)
                decode_context_tokens += request.prompt_tokens + request.generated_tokens

        remaining = [r.prompt_tokens - r.prefilled_tokens for r in prefilling]
        chunks = plan_prefill_chunks(remaining, self.limits.chunked_prefill_size)
        prefill = [(r, chunk) for r, chunk in zip(prefilling, chunks) if chunk > 0]

        step_us = self.cost.step_time_us(sum(chunks), len(decode), decode_context_tokens)
        return prefill, decode, round(step_us * 1000)

    def _complete_step(
        self, prefill: list[tuple[SimRequest, int]], decode: list[SimRequest]
    ) -> None:
        emit_perf_ns = time.perf_counter_ns()
        emit_wall_ns = time.time_ns()
        self._steps_total += 1

        # Requests cancelled while the step slept are skipped: their KV is already free.
        emitting: list[SimRequest] = []
        for request, chunk in prefill:
            if request.state is not RequestState.RUNNING:
                continue
            request.prefilled_tokens += chunk
            self._prompt_tokens_total += chunk
            # The step that completes a prompt also samples its first token.
            if request.prefilled_tokens == request.prompt_tokens:
                emitting.append(request)
        emitting.extend(r for r in decode if r.state is RequestState.RUNNING)

        for request in emitting:
            request.generated_tokens += 1
            request.emit_perf_ns.append(emit_perf_ns)
            if request.emit_wall_ns_first is None:
                request.emit_wall_ns_first = emit_wall_ns
            self._generation_tokens_total += 1

            client_connected = request.on_token is None or request.on_token(request)
            if not client_connected:
                self.cancel(request)
            elif request.generated_tokens == request.max_tokens:
                self._finish(request)

        if self._token_log is not None:
            self._token_log.flush()

    def _finish(self, request: SimRequest) -> None:
        request.state = RequestState.FINISHED
        self._num_running -= 1
        if request.kv_hold:
            self._kv_holds.hold(request.request_id, request.kv_tokens)
        else:
            self._kv_used_tokens -= request.kv_tokens
        self._request_success_total += 1
        if self._token_log is not None:
            self._token_log.record(request)
        _resolve(request)

    def _log_loop_exit(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "Step loop stopped on an error, so /health now returns 503",
                exc_info=task.exception(),
            )


def _resolve(request: SimRequest) -> None:
    if not request.done.done():
        request.done.set_result(None)
