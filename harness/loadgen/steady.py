"""Steady-state window of a level, and the throughput measured inside it.

The whole measurement window includes the ramp-up after the drained warmup and the
ramp-down while the last requests finish, and both lower its throughput. The steady
state leaves them out:
- closed loop: from the send of the C-th measured request, when all C slots are busy,
  to the send of the last measured request, after which slots start to empty;
- open loop: from the first to the last scheduled send of a measured request.
Inside the window [start, end] (both ends included) each quantity counts by its own
timestamps: output tokens of the token events in it, input tokens of the requests
whose first token event is in it, and requests whose end is in it.
"""

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any

from harness.loadgen.metrics import input_tokens, output_tokens
from harness.loadgen.records import RequestRecord

_NS_PER_S = 1_000_000_000

THROUGHPUT_KEYS = ("request_throughput_rps", "input_throughput_tps", "output_throughput_tps", "total_throughput_tps")


def steady_state_window_ns(
    measured: Sequence[RequestRecord], concurrency: int | None, open_loop: bool
) -> tuple[int, int] | None:
    """Return (start, end) of the steady state in perf_counter ns, or None when it does not exist.

    It does not exist without records, and in closed loop with fewer than C records.
    """
    if not measured:
        return None
    if open_loop:
        scheduled = [record.scheduled_perf_ns for record in measured]
        return min(scheduled), max(scheduled)

    if concurrency is None or len(measured) < concurrency:
        return None
    sends = sorted(record.send_perf_ns for record in measured)
    return sends[concurrency - 1], sends[-1]


def output_tokens_between(record: RequestRecord, start_ns: int, end_ns: int) -> float:
    """Output tokens of record's token events in [start_ns, end_ns].

    Events count with their token_counts, scaled so that all of a request's events add
    up to output_tokens(record): without per-event usage the client counts 1 token an
    event, and the final usage corrects the total.
    """
    times = record.token_perf_ns
    first = bisect_left(times, start_ns)
    last = bisect_right(times, end_ns)
    if first >= last:
        return 0.0
    counted = sum(record.token_counts)
    inside = sum(record.token_counts[first:last])
    return inside * output_tokens(record) / counted


def summarize_steady_state(
    measured: Sequence[RequestRecord],
    window_ns: tuple[int, int] | None,
    origin_ns: int | None,
    num_gpus: int,
) -> dict[str, Any]:
    """Return the steady_state object of a summary: window, counts and throughputs.

    start_offset_s is the window's start in seconds after origin_ns (the start of the
    measured phase). Throughputs count successful requests only and are None when the
    window lasts 0 ns or does not exist. failed counts failed requests that ended in it.
    """
    summary: dict[str, Any] = {"start_offset_s": None, "duration_s": None, "completed": 0, "failed": 0}
    summary.update(dict.fromkeys(THROUGHPUT_KEYS))
    summary.update(dict.fromkeys(f"{key}_per_gpu" for key in THROUGHPUT_KEYS))
    if window_ns is None:
        return summary

    start_ns, end_ns = window_ns
    duration_s = (end_ns - start_ns) / _NS_PER_S
    summary["start_offset_s"] = None if origin_ns is None else (start_ns - origin_ns) / _NS_PER_S
    summary["duration_s"] = duration_s

    completed = failed = input_total = 0
    output_total = 0.0
    for record in measured:
        ended_inside = record.end_perf_ns is not None and start_ns <= record.end_perf_ns <= end_ns
        if not record.succeeded:
            failed += ended_inside
            continue
        completed += ended_inside
        if start_ns <= record.token_perf_ns[0] <= end_ns:
            input_total += input_tokens(record)
        output_total += output_tokens_between(record, start_ns, end_ns)
    summary["completed"] = completed
    summary["failed"] = failed

    if duration_s <= 0:
        return summary
    values = (completed, input_total, output_total, input_total + output_total)
    for key, value in zip(THROUGHPUT_KEYS, values):
        summary[key] = value / duration_s
        summary[f"{key}_per_gpu"] = value / duration_s / num_gpus
    return summary
