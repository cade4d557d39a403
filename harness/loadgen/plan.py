"""Split a level into client processes: how many, and which requests, slots and send times each gets.

Request ids are global: warmup requests are 0 .. W-1 and measured ones W .. W+N-1, so
the merged records of all processes have unique ids. Closed loop splits the concurrency
and the requests as evenly as possible. Open loop computes one schedule for the whole
level and deals it out in turn, so every process follows the same global schedule.
"""

import math
import os

from harness.loadgen.level import LevelSpec
from harness.loadgen.schedule import arrival_offsets_ns
from harness.loadgen.share import Share

# NOTE: both limits are estimates with wide room to spare, not measured limits. One
# saturated client process used about 3 us of CPU per token event (about 330k events/s)
# against a server on another core that sent 32 pre-rendered events per write (2-core
# x86 VM, Python 3.11, aiohttp 3.14, orjson 3.8). Reads that carry one event each cost
# more, and timestamps need an idle loop, so a process gets about a tenth of that. A
# saturated client shows up as client_loop_lag_ms and flags the level.
CONCURRENCY_PER_PROCESS = 256
EVENTS_PER_S_PER_PROCESS = 40_000


def client_process_count(spec: LevelSpec, cpu_count: int | None = None) -> int:
    """Return the number of client processes for spec.

    The count is spec.client_processes when set. Otherwise it is automatic: ceil(C / 256)
    in closed loop, and in open loop the larger of ceil(cap / 256) and
    ceil(rate x OSL / 40k events/s), which assumes one event per output token. An
    automatic count is at most the number of CPUs. Every count is then lowered to what
    the level can split: C in closed loop, the cap and the measured requests in open loop.
    """
    if spec.client_processes is not None:
        count = spec.client_processes
    else:
        count = _automatic_count(spec)
        count = min(count, cpu_count or os.cpu_count() or 1)

    if spec.request_rate is None:
        limit = spec.concurrency
    else:
        limit = spec.num_requests if spec.concurrency is None else min(spec.concurrency, spec.num_requests)
    return max(1, min(count, limit))


def _automatic_count(spec: LevelSpec) -> int:
    if spec.request_rate is None:
        return math.ceil(spec.concurrency / CONCURRENCY_PER_PROCESS)
    by_cap = 1 if spec.concurrency is None else math.ceil(spec.concurrency / CONCURRENCY_PER_PROCESS)
    by_events = math.ceil(spec.request_rate * spec.osl / EVENTS_PER_S_PER_PROCESS)
    return max(by_cap, by_events)


def split_evenly(total: int, parts: int) -> list[int]:
    """Split total into parts integers that differ by at most 1, larger ones first."""
    if parts < 1:
        raise ValueError(f"parts={parts} is invalid; split into 1 or more parts")
    base, extra = divmod(total, parts)
    return [base + 1 if i < extra else base for i in range(parts)]


def plan_shares(spec: LevelSpec, processes: int) -> list[Share]:
    """Split spec into `processes` shares (see the module docstring for the rules)."""
    warmup_ids = range(spec.warmup_requests)
    measured_ids = range(spec.warmup_requests, spec.warmup_requests + spec.num_requests)

    if spec.request_rate is None:
        slots = split_evenly(spec.concurrency, processes)
        return [
            Share(
                index=i,
                concurrency=slots[i],
                warmup_ids=_block(warmup_ids, processes, i),
                measured_ids=_block(measured_ids, processes, i),
            )
            for i in range(processes)
        ]

    # One schedule for warmup and measurement; the measured part is shifted to start at
    # 0 because it starts after the drained warmup.
    offsets = arrival_offsets_ns(
        spec.warmup_requests + spec.num_requests, spec.request_rate, spec.arrival, spec.burstiness, spec.seed_key
    )
    warmup_offsets = offsets[: spec.warmup_requests]
    measured_offsets = [offset - offsets[spec.warmup_requests] for offset in offsets[spec.warmup_requests :]]
    caps = None if spec.concurrency is None else split_evenly(spec.concurrency, processes)
    return [
        Share(
            index=i,
            # NOTE: the cap is split too, so a process may hold back a due request while
            # another process has a free slot. The total in flight never exceeds the cap.
            concurrency=None if caps is None else caps[i],
            warmup_ids=tuple(warmup_ids[i::processes]),
            measured_ids=tuple(measured_ids[i::processes]),
            warmup_offsets_ns=tuple(warmup_offsets[i::processes]),
            measured_offsets_ns=tuple(measured_offsets[i::processes]),
        )
        for i in range(processes)
    ]


def _block(ids: range, parts: int, index: int) -> tuple[int, ...]:
    """Return the index-th of `parts` contiguous blocks of ids, sized by split_evenly."""
    sizes = split_evenly(len(ids), parts)
    start = sum(sizes[:index])
    return tuple(ids[start : start + sizes[index]])
