"""Run a level's shares in worker processes and merge their records.

Each worker runs harness.loadgen.share.run_share in its own event loop and session.
Before each phase (warmup, then measure) every worker reports ready, and the parent
sends all of them one start time a little in the future, so the shares start together.
The start time is a time.perf_counter_ns() value of the parent. On Linux perf_counter
reads clock_gettime(CLOCK_MONOTONIC), as time.get_clock_info("perf_counter") reports on
CPython 3.11, and that clock is one for the whole system. So the value means the same
instant in every process, and the workers' timestamps are comparable.

Workers start with the "spawn" method, never fork, because the parent may run threads
(the metrics sampler, the server of a test) and a forked child inherits locks that
those threads held.
"""

import asyncio
import logging
import multiprocessing
import queue
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from harness.errors import HarnessError
from harness.loadgen.client import LiveCounters
from harness.loadgen.level import PHASE_MEASURE, PHASE_WARMUP, LevelProgress, LevelSpec
from harness.loadgen.records import RequestRecord
from harness.loadgen.share import PROGRESS_INTERVAL_S, Share, run_share

logger = logging.getLogger(__name__)

# Delay from the parent's start message to the common start, so that every worker has
# the message before the start. A worker that gets it late shows the delay as send lag.
START_DELAY_NS = 50_000_000

# How often the parent checks that its workers are alive while it waits for messages.
_POLL_S = PROGRESS_INTERVAL_S


def run_shares_in_processes(
    spec: LevelSpec, shares: Sequence[Share], progress: Callable[[LevelProgress], None] | None
) -> tuple[list[RequestRecord], list[int]]:
    """Run each share in its own process; return the merged records by request id and the loop-lag samples."""
    context = multiprocessing.get_context("spawn")
    outbox = context.Queue()
    workers = []
    inboxes: list[Connection] = []
    try:
        for share in shares:
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(
                target=_worker_main,
                args=(spec, share, receiver, outbox),
                name=f"harness-loadgen-{share.index}",
                daemon=True,
            )
            process.start()
            receiver.close()
            workers.append(process)
            inboxes.append(sender)
        logger.debug("level %s: started %d client processes", spec.name, len(workers))

        parent = _Parent(spec, shares, workers, outbox, progress)
        for phase in (PHASE_WARMUP, PHASE_MEASURE):
            parent.wait_until_ready(phase)
            start_ns = time.perf_counter_ns() + START_DELAY_NS
            parent.phase_start_ns = start_ns
            for inbox in inboxes:
                inbox.send(start_ns)
        records, loop_lag_ns = parent.collect_results()

        for process in workers:
            process.join()
    finally:
        for process in workers:
            if process.is_alive():
                logger.warning("stopping client process %s (pid %s)", process.name, process.pid)
                process.terminate()
                process.join()
        for inbox in inboxes:
            inbox.close()

    records.sort(key=lambda record: record.request_id)
    return records, loop_lag_ns


class _Parent:
    """The parent's side of the messages: readiness, progress, results and errors."""

    def __init__(
        self,
        spec: LevelSpec,
        shares: Sequence[Share],
        workers: list[multiprocessing.process.BaseProcess],
        outbox: multiprocessing.Queue,
        progress: Callable[[LevelProgress], None] | None,
    ) -> None:
        self.spec = spec
        self.workers = workers
        self.outbox = outbox
        self.progress = progress
        self.totals = {
            PHASE_WARMUP: sum(len(share.warmup_ids) for share in shares),
            PHASE_MEASURE: sum(len(share.measured_ids) for share in shares),
        }
        self.phase = PHASE_WARMUP
        self.phase_start_ns = time.perf_counter_ns()
        # Latest (done, failed, in_flight, output_tokens) of each worker in the current phase.
        self.counts: dict[int, tuple[int, int, int, int]] = {}
        self.last_progress_ns = 0
        self.ready: set[int] = set()
        self.results: dict[int, tuple[list[RequestRecord], list[int]]] = {}
        # Workers found dead without a result at the previous poll.
        self.exited: set[int] = set()

    def wait_until_ready(self, phase: str) -> None:
        self.ready.clear()
        while len(self.ready) < len(self.workers):
            self._handle(self._next_message())
        if self.phase != phase:
            self.phase = phase
            self.counts.clear()

    def collect_results(self) -> tuple[list[RequestRecord], list[int]]:
        while len(self.results) < len(self.workers):
            self._handle(self._next_message())
        self._emit_progress(final=True)
        records: list[RequestRecord] = []
        loop_lag_ns: list[int] = []
        for index in sorted(self.results):
            worker_records, worker_lag = self.results[index]
            records.extend(worker_records)
            loop_lag_ns.extend(worker_lag)
        return records, loop_lag_ns

    def _next_message(self) -> tuple[Any, ...]:
        while True:
            try:
                return self.outbox.get(timeout=_POLL_S)
            except queue.Empty:
                self._check_alive()
                self._emit_progress(final=False)

    def _check_alive(self) -> None:
        for index, process in enumerate(self.workers):
            if index in self.results or process.is_alive():
                continue
            # A worker exits right after its last message, which may still be in the
            # queue at this poll, so only a second empty poll means it is lost.
            if index in self.exited:
                raise HarnessError(
                    f"client process {index} (pid {process.pid}) of level {self.spec.name} exited with code "
                    f"{process.exitcode} before sending its records (a negative code is the signal that "
                    "stopped it, e.g. -9 when the system ran out of memory)"
                )
            self.exited.add(index)

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind, index = message[0], message[1]
        if kind == "ready":
            self.ready.add(index)
        elif kind == "progress":
            phase, counts = message[2], message[3]
            if phase == self.phase:
                self.counts[index] = counts
                self._emit_progress(final=False)
        elif kind == "result":
            self.results[index] = (message[2], message[3])
        elif kind == "error":
            raise HarnessError(f"client process {index} of level {self.spec.name} failed:\n{message[2]}")

    def _emit_progress(self, final: bool) -> None:
        now_ns = time.perf_counter_ns()
        if self.progress is None or (not final and now_ns - self.last_progress_ns < PROGRESS_INTERVAL_S * 1e9):
            return
        self.last_progress_ns = now_ns
        done = failed = in_flight = output_tokens = 0
        for worker_done, worker_failed, worker_in_flight, worker_tokens in self.counts.values():
            done += worker_done
            failed += worker_failed
            in_flight += worker_in_flight
            output_tokens += worker_tokens
        self.progress(
            LevelProgress(
                done=done,
                total=self.totals[self.phase],
                in_flight=in_flight,
                failed=failed,
                output_tokens=output_tokens,
                elapsed_s=max(now_ns - self.phase_start_ns, 0) / 1e9,
                phase=self.phase,
            )
        )


class _WorkerCoordinator:
    """A worker's side: report ready and wait for the start time, and forward progress."""

    def __init__(self, index: int, inbox: Connection, outbox: multiprocessing.Queue) -> None:
        self.index = index
        self.inbox = inbox
        self.outbox = outbox

    async def wait_start(self, phase: str) -> int:
        self.outbox.put(("ready", self.index, phase))
        # Connection.recv blocks, so it waits in a thread while the event loop stays free.
        return await asyncio.get_running_loop().run_in_executor(None, self.inbox.recv)

    def report(self, phase: str, counters: LiveCounters, total: int, elapsed_s: float) -> None:
        counts = (counters.done, counters.failed, counters.in_flight, counters.output_tokens)
        self.outbox.put(("progress", self.index, phase, counts))


def _worker_main(spec: LevelSpec, share: Share, inbox: Connection, outbox: multiprocessing.Queue) -> None:
    """Entry point of a worker process: run the share and send its outcome, or its traceback."""
    try:
        outcome = asyncio.run(run_share(spec, share, _WorkerCoordinator(share.index, inbox, outbox)))
    except BaseException:
        outbox.put(("error", share.index, traceback.format_exc()))
        raise
    outbox.put(("result", share.index, outcome.records, outcome.loop_lag_ns))
    # Wait until the queue's feeder thread has written the records to the pipe.
    outbox.close()
    outbox.join_thread()
