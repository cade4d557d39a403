"""Run one client process's share of a level: its session, its warmup and measured phases,
the event-loop lag probe and progress reports.

The same code runs in the only process of a level and in each worker process of a split
level. A Coordinator returns the start time of each phase and receives the progress,
and only the Coordinator differs between the two cases.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from harness.loadgen.client import Endpoint, LiveCounters, PreparedRequest
from harness.loadgen.dispatch import measure_loop_lag, run_closed_loop, run_open_loop
from harness.loadgen.level import PHASE_MEASURE, PHASE_WARMUP, LevelProgress, LevelSpec
from harness.loadgen.prompts import build_request_body
from harness.loadgen.records import RequestRecord

logger = logging.getLogger(__name__)

# Seconds between progress reports: at most about 4 calls of the progress callback a second.
PROGRESS_INTERVAL_S = 0.25

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class Share:
    """One client process's part of a level: its request ids, slots and schedule."""

    index: int
    # Closed loop: the process's slots. Open loop: its cap on requests in flight, or None.
    concurrency: int | None
    warmup_ids: tuple[int, ...]
    measured_ids: tuple[int, ...]
    # Open loop only: each request's send offset from the start of its phase, in ns.
    warmup_offsets_ns: tuple[int, ...] | None = None
    measured_offsets_ns: tuple[int, ...] | None = None


@dataclass
class ShareOutcome:
    """Records of a share (warmup first) and its event-loop lag samples of the measured phase."""

    records: list[RequestRecord]
    loop_lag_ns: list[int] = field(default_factory=list)


class Coordinator(Protocol):
    """Start times and progress of the phases of one share."""

    async def wait_start(self, phase: str) -> int:
        """Return the perf_counter_ns() at which the phase starts, once every share is ready."""

    def report(self, phase: str, counters: LiveCounters, total: int, elapsed_s: float) -> None:
        """Take the share's counts of a running phase."""


class LocalCoordinator:
    """Coordinator of a level that runs in one process: phases start at once, and
    progress goes to the callback at most every PROGRESS_INTERVAL_S."""

    def __init__(self, progress: Callable[[LevelProgress], None] | None) -> None:
        self.progress = progress

    async def wait_start(self, phase: str) -> int:
        return time.perf_counter_ns()

    def report(self, phase: str, counters: LiveCounters, total: int, elapsed_s: float) -> None:
        if self.progress is not None:
            self.progress(
                LevelProgress(
                    done=counters.done,
                    total=total,
                    in_flight=counters.in_flight,
                    failed=counters.failed,
                    output_tokens=counters.output_tokens,
                    elapsed_s=elapsed_s,
                    phase=phase,
                )
            )


def endpoint_for(spec: LevelSpec) -> Endpoint:
    headers = {"Content-Type": "application/json"}
    if spec.api_key is not None:
        headers["Authorization"] = f"Bearer {spec.api_key}"
    return Endpoint(
        url=spec.url,
        kind=spec.endpoint,
        timeout_s=spec.timeout_s,
        headers=headers,
        ttft_timeout_s=spec.ttft_timeout_s,
        request_id_prefix=request_id_prefix(spec),
    )


def request_id_prefix(spec: LevelSpec) -> str:
    """Return the X-Request-Id prefix of a level: harness-<seed>-<level>-, e.g. harness-0-c16-.

    A request's id on the server is then this prefix and its request_id column in
    requests.parquet, unique across the levels of a point.
    """
    return f"harness-{spec.seed}-{spec.name}-"


def prepare_requests(spec: LevelSpec, request_ids: Sequence[int], warmup: bool) -> list[PreparedRequest]:
    """Build the requests of the given ids, with prompts seeded by spec.seed_key and the id.

    The seed key differs between levels and the ids between requests of a level, so no
    two requests of a job share a prompt prefix.
    """
    # NOTE: every body is built before the level starts and kept in memory, up to
    # 7 bytes per prompt token for token-id prompts (a six-digit id and a comma).
    seed_key = spec.seed_key
    return [
        PreparedRequest(
            request_id=request_id,
            warmup=warmup,
            target_isl=spec.isl,
            target_osl=spec.osl,
            body=build_request_body(spec.endpoint, spec.model, request_id, spec.isl, spec.osl, spec.vocab_size, seed_key),
        )
        for request_id in request_ids
    ]


async def run_share(spec: LevelSpec, share: Share, coordinator: Coordinator) -> ShareOutcome:
    """Run the warmup phase, drain it, then run the measured phase; return all records.

    The warmup is drained: the measured phase starts once every warmup request has
    ended, so the server starts it from an empty batch, and the summary's steady_state
    window leaves out the ramp-up that follows.
    """
    warmup = prepare_requests(spec, share.warmup_ids, warmup=True)
    measured = prepare_requests(spec, share.measured_ids, warmup=False)
    endpoint = endpoint_for(spec)
    loop_lag_ns: list[int] = []

    # limit=0 removes aiohttp's default cap of 100 connections, which would hold
    # requests back at concurrency above 100. Each request has its own timeout, so the
    # session's default 300 s total timeout is turned off.
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
        phase = _PhaseRunner(session, endpoint, share, coordinator)
        warmup_records = await phase.run(PHASE_WARMUP, warmup, share.warmup_offsets_ns)
        failed = sum(1 for record in warmup_records if not record.succeeded)
        if failed:
            logger.warning("client process %d: %d of %d warmup requests failed", share.index, failed, len(warmup_records))
        measured_records = await phase.run(PHASE_MEASURE, measured, share.measured_offsets_ns, loop_lag_ns)
    return ShareOutcome(records=warmup_records + measured_records, loop_lag_ns=loop_lag_ns)


class _PhaseRunner:
    def __init__(self, session: aiohttp.ClientSession, endpoint: Endpoint, share: Share, coordinator: Coordinator) -> None:
        self.session = session
        self.endpoint = endpoint
        self.share = share
        self.coordinator = coordinator

    async def run(
        self,
        phase: str,
        requests: list[PreparedRequest],
        offsets_ns: Sequence[int] | None,
        loop_lag_ns: list[int] | None = None,
    ) -> list[RequestRecord]:
        """Wait for the phase's start, send its requests, and report its progress until they end."""
        start_ns = await self.coordinator.wait_start(phase)
        counters = LiveCounters()
        helpers = [asyncio.create_task(self._report(phase, counters, len(requests), start_ns))]
        if loop_lag_ns is not None:
            helpers.append(asyncio.create_task(measure_loop_lag(loop_lag_ns)))

        share = self.share
        try:
            if offsets_ns is None:
                records = await run_closed_loop(
                    self.session, self.endpoint, requests, share.concurrency, start_ns, counters, share.index
                )
            else:
                records = await run_open_loop(
                    self.session, self.endpoint, requests, offsets_ns, start_ns, share.concurrency, counters, share.index
                )
        finally:
            for helper in helpers:
                helper.cancel()

        self.coordinator.report(phase, counters, len(requests), _elapsed_s(start_ns))
        return records

    async def _report(self, phase: str, counters: LiveCounters, total: int, start_ns: int) -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            self.coordinator.report(phase, counters, total, _elapsed_s(start_ns))


def _elapsed_s(start_ns: int) -> float:
    # A worker process waits for a common start time a little in the future.
    return max(time.perf_counter_ns() - start_ns, 0) / _NS_PER_S
