"""Summary of one load level (summary.json) from its RequestRecords.

Warmup records are ignored. Failed requests are counted and left out of every latency
statistic and throughput, and the error rate is reported beside the throughputs.
Throughputs are given over the whole measurement window and over the steady state
(steady.py).
"""

from collections import Counter
from collections.abc import Sequence
from typing import Any

from harness.loadgen.level import ValidityThresholds
from harness.loadgen.metrics import (
    e2e_from_scheduled_ns,
    e2e_ns,
    input_tokens,
    isl_delta,
    itl_samples_ns,
    meets_slo,
    osl_delta,
    output_tokens,
    send_lag_ns,
    tpot_ns,
    ttft_ns,
)
from harness.loadgen.records import RequestRecord
from harness.loadgen.stats import describe
from harness.loadgen.steady import THROUGHPUT_KEYS, steady_state_window_ns, summarize_steady_state
from harness.loadgen.validity import validity_flags
from harness.results.layout import level_name

_NS_PER_MS = 1_000_000
_NS_PER_S = 1_000_000_000


def measurement_window_ns(records: Sequence[RequestRecord]) -> tuple[int, int] | None:
    """Return (first send, last end) over the given records, failed ones included.

    Failed requests count because they occupied the server and the client's slots for
    their whole duration. None when there is no record.
    """
    if not records:
        return None
    start = min(record.send_perf_ns for record in records)
    ends = [record.end_perf_ns for record in records if record.end_perf_ns is not None]
    end = max(ends) if ends else start
    return start, end


def summarize_level(
    records: Sequence[RequestRecord],
    *,
    concurrency: int | None,
    request_rate: float | None,
    num_gpus: int,
    target_isl: int,
    target_osl: int,
    warmup_requests: int,
    slo_ttft_ms: float | None,
    slo_itl_ms: float | None,
    check_isl: bool = True,
    loop_lag_ns: Sequence[int] = (),
    validity: ValidityThresholds = ValidityThresholds(),
    arrival: str | None = None,
    burstiness: float | None = None,
    client_processes: int = 1,
) -> dict[str, Any]:
    """Summarize the measured (non-warmup) records of one level into the summary.json dict.

    request_rate None means closed loop with `concurrency` slots; otherwise open loop
    with `concurrency` as the optional cap. Throughputs divide the totals of successful
    requests by the measurement window (measurement_window_ns), and are None when the
    window lasts 0 ns. Latency statistics are in ms over successful requests; ITL pools
    the samples of all of them. interactivity_tps_per_user = 1000 / mean TPOT in ms.
    goodput_rps counts requests that pass meets_slo(). send_lag_ms covers every
    measured request, and client_loop_lag_ms the loop_lag_ns samples. Pass
    check_isl=False for chat prompts, whose ISL is only approximate, so that an ISL
    mismatch is counted but does not flag the level.
    """
    measured = [record for record in records if not record.warmup]
    succeeded = [record for record in measured if record.succeeded]
    failed = len(measured) - len(succeeded)
    open_loop = request_rate is not None

    window = measurement_window_ns(measured)
    duration_s = None if window is None else (window[1] - window[0]) / _NS_PER_S

    input_total = sum(input_tokens(record) for record in succeeded)
    output_total = sum(output_tokens(record) for record in succeeded)
    good = sum(1 for record in succeeded if meets_slo(record, slo_ttft_ms, slo_itl_ms))

    def per_second(count: int) -> float | None:
        if duration_s is None or duration_s <= 0:
            return None
        return count / duration_s

    tpot_stats = _describe_ms(map(tpot_ns, succeeded))
    mean_tpot_ms = tpot_stats["mean"]

    isl_mismatch = sum(1 for record in succeeded if isl_delta(record) not in (None, 0))
    osl_mismatch = sum(1 for record in succeeded if osl_delta(record) not in (None, 0))

    summary: dict[str, Any] = {
        "level": level_name(concurrency=concurrency, request_rate=request_rate),
        "concurrency": concurrency,
        "request_rate": request_rate,
        "arrival": arrival if open_loop else None,
        "burstiness": burstiness if open_loop else None,
        "num_gpus": num_gpus,
        "client_processes": client_processes,
        "target_isl": target_isl,
        "target_osl": target_osl,
        "warmup_requests": warmup_requests,
        "completed": len(succeeded),
        "failed": failed,
        "error_rate": failed / len(measured) if measured else None,
        "errors_by_type": dict(Counter(record.error_type for record in measured if not record.succeeded)),
        "duration_s": duration_s,
        "request_throughput_rps": per_second(len(succeeded)),
        "input_throughput_tps": per_second(input_total),
        "output_throughput_tps": per_second(output_total),
        "total_throughput_tps": per_second(input_total + output_total),
    }
    for key in THROUGHPUT_KEYS:
        summary[f"{key}_per_gpu"] = None if summary[key] is None else summary[key] / num_gpus

    origin_ns = min((record.scheduled_perf_ns for record in measured), default=None)
    steady_window = steady_state_window_ns(measured, concurrency, open_loop)
    send_lag_stats = _describe_ms(map(send_lag_ns, measured))
    loop_lag_stats = _describe_ms(loop_lag_ns)

    summary.update(
        interactivity_tps_per_user=None if mean_tpot_ms is None or mean_tpot_ms <= 0 else 1000.0 / mean_tpot_ms,
        goodput_rps=per_second(good),
        steady_state=summarize_steady_state(measured, steady_window, origin_ns, num_gpus),
        ttft_ms=_describe_ms(map(ttft_ns, succeeded)),
        tpot_ms=tpot_stats,
        itl_ms=_describe_ms(value for record in succeeded for value in itl_samples_ns(record)),
        e2e_ms=_describe_ms(map(e2e_ns, succeeded)),
        e2e_from_scheduled_ms=_describe_ms(map(e2e_from_scheduled_ns, succeeded)),
        send_lag_ms=send_lag_stats,
        client_loop_lag_ms=loop_lag_stats,
        isl_mismatch=isl_mismatch,
        osl_mismatch=osl_mismatch,
        mean_isl=input_total / len(succeeded) if succeeded else None,
        mean_osl=output_total / len(succeeded) if succeeded else None,
        started_wall_ns=min((record.send_wall_ns for record in measured), default=None),
    )

    flags = validity_flags(
        measured,
        succeeded,
        isl_mismatch=isl_mismatch,
        osl_mismatch=osl_mismatch,
        check_isl=check_isl,
        send_lag_p99_ms=send_lag_stats["p99"],
        loop_lag_p99_ms=loop_lag_stats["p99"],
        open_loop=open_loop,
        thresholds=validity,
    )
    summary["valid"] = not flags
    summary["flags"] = flags
    return summary


def _describe_ms(values_ns) -> dict[str, float | None]:
    """describe() of the values that are not None, converted from ns to ms."""
    return describe([value / _NS_PER_MS for value in values_ns if value is not None])
