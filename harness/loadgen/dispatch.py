"""Send a list of requests in closed loop or on an open-loop schedule, within one event loop.

Closed loop: `concurrency` slots each send a request, wait for its end, and send the
next one at once, so exactly `concurrency` requests are in flight until fewer remain to
be sent. Open loop: each request is due at start + its offset. With a cap, a due
request also waits for a free slot, so its send lag grows.
"""

import asyncio
import time
from collections.abc import Sequence

import aiohttp

from harness.loadgen.client import Endpoint, LiveCounters, PreparedRequest, send_request
from harness.loadgen.records import RequestRecord

_NS_PER_S = 1_000_000_000

# Interval of the event-loop lag probe.
LOOP_LAG_INTERVAL_NS = 10_000_000


async def sleep_until(when_perf_ns: int) -> None:
    """Sleep until time.perf_counter_ns() reaches when_perf_ns; return at once if it has.

    NOTE: asyncio's epoll wait has a resolution of 1 ms, so the wake-up can come up to
    about 1 ms late even on an idle loop. The send lag records it.
    """
    delay_ns = when_perf_ns - time.perf_counter_ns()
    if delay_ns > 0:
        await asyncio.sleep(delay_ns / _NS_PER_S)


async def run_closed_loop(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    requests: Sequence[PreparedRequest],
    concurrency: int,
    start_perf_ns: int,
    counters: LiveCounters,
    client_process: int = 0,
) -> list[RequestRecord]:
    """Send requests with `concurrency` slots from start_perf_ns on; return their records by request id.

    A slot's first request is scheduled at start_perf_ns, and each later one at the
    moment the slot's previous request returned.
    """
    pending = iter(requests)
    records: list[RequestRecord] = []

    async def slot() -> None:
        scheduled_ns = start_perf_ns
        # Slots share one iterator, so no request is sent twice.
        for request in pending:
            records.append(await _send_counted(session, endpoint, request, scheduled_ns, counters, client_process))
            scheduled_ns = time.perf_counter_ns()

    await sleep_until(start_perf_ns)
    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(requests))):
            group.create_task(slot())
    records.sort(key=lambda record: record.request_id)
    return records


async def run_open_loop(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    requests: Sequence[PreparedRequest],
    offsets_ns: Sequence[int],
    start_perf_ns: int,
    max_in_flight: int | None,
    counters: LiveCounters,
    client_process: int = 0,
) -> list[RequestRecord]:
    """Send requests[i] at start_perf_ns + offsets_ns[i] (offsets ascending); return the records by request id.

    With max_in_flight, a request that is due while max_in_flight requests are in flight
    waits for one of them to end, and so do the requests due after it (first come,
    first served). Its scheduled time stays the one of the schedule.
    """
    if len(offsets_ns) != len(requests):
        raise ValueError(f"{len(requests)} requests need as many offsets, got {len(offsets_ns)}")

    slots = None if max_in_flight is None else asyncio.Semaphore(max_in_flight)
    records: list[RequestRecord] = []

    async def send(request: PreparedRequest, scheduled_ns: int) -> None:
        try:
            records.append(await _send_counted(session, endpoint, request, scheduled_ns, counters, client_process))
        finally:
            if slots is not None:
                slots.release()

    async with asyncio.TaskGroup() as group:
        for request, offset_ns in zip(requests, offsets_ns):
            scheduled_ns = start_perf_ns + offset_ns
            await sleep_until(scheduled_ns)
            if slots is not None:
                await slots.acquire()
            group.create_task(send(request, scheduled_ns))
    records.sort(key=lambda record: record.request_id)
    return records


async def measure_loop_lag(samples_ns: list[int]) -> None:
    """Append the event loop's lag to samples_ns every 10 ms until cancelled.

    Lag = time a 10 ms sleep took - 10 ms, clamped at 0: how late the loop ran a task
    that was ready. A saturated client has a large lag, and its timestamps are late by
    about as much.
    """
    interval_s = LOOP_LAG_INTERVAL_NS / _NS_PER_S
    while True:
        before_ns = time.perf_counter_ns()
        await asyncio.sleep(interval_s)
        samples_ns.append(max(time.perf_counter_ns() - before_ns - LOOP_LAG_INTERVAL_NS, 0))


async def _send_counted(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    request: PreparedRequest,
    scheduled_ns: int,
    counters: LiveCounters,
    client_process: int,
) -> RequestRecord:
    counters.in_flight += 1
    try:
        record = await send_request(session, endpoint, request, scheduled_ns, counters, client_process)
    finally:
        counters.in_flight -= 1
    counters.done += 1
    if not record.succeeded:
        counters.failed += 1
    return record
