"""Metrics of one load level, as pure functions over its RequestRecords.

Per-request metrics return None (or no samples) for a failed request or when they are
undefined. summarize_level() counts failed requests and leaves them out of every
latency statistic and throughput. It ignores warmup records.
"""

from collections import Counter
from collections.abc import Sequence
from typing import Any

from harness.loadgen.records import RequestRecord
from harness.loadgen.stats import describe
from harness.results.layout import level_name

# A level whose error rate (failed / measured requests) exceeds this is flagged invalid.
MAX_ERROR_RATE = 0.05

# A level where more than this fraction of successful requests has an ISL or OSL (from the
# server's usage) other than the target is flagged invalid.
MAX_MISMATCH_RATE = 0.01

_NS_PER_MS = 1_000_000
_NS_PER_S = 1_000_000_000


def output_tokens(record: RequestRecord) -> int:
    """Return the output length: usage.completion_tokens, else the sum of token_counts."""
    if record.usage_completion_tokens is not None:
        return record.usage_completion_tokens
    return sum(record.token_counts)


def input_tokens(record: RequestRecord) -> int:
    """Return the input length: usage.prompt_tokens, else the target ISL.

    The target ISL is exact for token-id prompts. A level where usage is missing is
    flagged by summarize_level(), because chat prompts have no exact target.
    """
    if record.usage_prompt_tokens is not None:
        return record.usage_prompt_tokens
    return record.target_isl


def ttft_ns(record: RequestRecord) -> int | None:
    """TTFT = first token event - send, or None for a failed request or one without tokens."""
    if not record.succeeded or not record.token_perf_ns:
        return None
    return record.token_perf_ns[0] - record.send_perf_ns


def e2e_ns(record: RequestRecord) -> int | None:
    """E2E latency = last token event - send, or None for a failed request or one without tokens."""
    if not record.succeeded or not record.token_perf_ns:
        return None
    return record.token_perf_ns[-1] - record.send_perf_ns


def tpot_ns(record: RequestRecord) -> float | None:
    """TPOT = (E2E - TTFT) / (OSL - tokens in the first event), with OSL from output_tokens().

    None for a failed request, and undefined (None) when the denominator is 0 or less,
    as for a request whose tokens all came in its first event.
    """
    if not record.succeeded or not record.token_perf_ns:
        return None
    later_tokens = output_tokens(record) - record.token_counts[0]
    if later_tokens <= 0:
        return None
    return (record.token_perf_ns[-1] - record.token_perf_ns[0]) / later_tokens


def itl_samples_ns(record: RequestRecord) -> list[float]:
    """ITL samples: one per token after the first event, gap to the previous event / tokens.

    An event of k tokens that arrives gap ns after the previous event contributes k
    samples of gap / k. A failed request or one with a single event has no samples.
    """
    if not record.succeeded:
        return []
    samples: list[float] = []
    times = record.token_perf_ns
    for i in range(1, len(times)):
        count = record.token_counts[i]
        samples.extend([(times[i] - times[i - 1]) / count] * count)
    return samples


def mean_itl_ns(record: RequestRecord) -> float | None:
    """Mean of itl_samples_ns(record) = (last event - first event) / tokens after the first event.

    None when the request has no ITL sample (failed, or a single event).
    """
    if not record.succeeded or len(record.token_perf_ns) < 2:
        return None
    later_tokens = sum(record.token_counts[1:])
    return (record.token_perf_ns[-1] - record.token_perf_ns[0]) / later_tokens


def meets_slo(record: RequestRecord, slo_ttft_ms: float | None, slo_itl_ms: float | None) -> bool:
    """Return whether a successful request has TTFT <= slo_ttft_ms and mean ITL <= slo_itl_ms.

    A None limit always passes, and so does the ITL limit for a request without ITL samples.
    A failed request never meets the SLO.
    """
    ttft = ttft_ns(record)
    if ttft is None:
        return False
    if slo_ttft_ms is not None and ttft > slo_ttft_ms * _NS_PER_MS:
        return False
    mean_itl = mean_itl_ns(record)
    if slo_itl_ms is not None and mean_itl is not None and mean_itl > slo_itl_ms * _NS_PER_MS:
        return False
    return True


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
) -> dict[str, Any]:
    """Summarize the measured (non-warmup) records of one level into the summary.json dict.

    Throughputs divide the totals of successful requests by the measurement window
    (measurement_window_ns), and are None when the window lasts 0 ns. Latency statistics
    are in ms over successful requests; ITL pools the samples of all of them.
    interactivity_tps_per_user = 1000 / mean TPOT in ms. goodput_rps counts requests
    that pass meets_slo(). Pass check_isl=False for chat prompts, whose ISL is only
    approximate, so that an ISL mismatch is counted but does not flag the level.
    """
    measured = [record for record in records if not record.warmup]
    succeeded = [record for record in measured if record.succeeded]
    failed = len(measured) - len(succeeded)

    window = measurement_window_ns(measured)
    duration_s = None if window is None else (window[1] - window[0]) / _NS_PER_S

    input_total = sum(input_tokens(record) for record in succeeded)
    output_total = sum(output_tokens(record) for record in succeeded)
    good = sum(1 for record in succeeded if meets_slo(record, slo_ttft_ms, slo_itl_ms))

    def per_second(count: int) -> float | None:
        if duration_s is None or duration_s <= 0:
            return None
        return count / duration_s

    def per_gpu(value: float | None) -> float | None:
        return None if value is None else value / num_gpus

    tpots_ms = [value / _NS_PER_MS for value in map(tpot_ns, succeeded) if value is not None]
    tpot_stats = describe(tpots_ms)
    mean_tpot_ms = tpot_stats["mean"]

    isl_mismatch = sum(1 for r in succeeded if r.usage_prompt_tokens not in (None, r.target_isl))
    osl_mismatch = sum(1 for r in succeeded if r.usage_completion_tokens not in (None, r.target_osl))

    summary: dict[str, Any] = {
        "level": level_name(concurrency=concurrency, request_rate=request_rate),
        "concurrency": concurrency,
        "request_rate": request_rate,
        "num_gpus": num_gpus,
        "target_isl": target_isl,
        "target_osl": target_osl,
        "warmup_requests": warmup_requests,
        "completed": len(succeeded),
        "failed": failed,
        "error_rate": failed / len(measured) if measured else None,
        "duration_s": duration_s,
        "request_throughput_rps": per_second(len(succeeded)),
        "input_throughput_tps": per_second(input_total),
        "output_throughput_tps": per_second(output_total),
        "total_throughput_tps": per_second(input_total + output_total),
    }
    for key in ("request_throughput_rps", "input_throughput_tps", "output_throughput_tps", "total_throughput_tps"):
        summary[f"{key}_per_gpu"] = per_gpu(summary[key])

    summary.update(
        interactivity_tps_per_user=None if mean_tpot_ms is None or mean_tpot_ms <= 0 else 1000.0 / mean_tpot_ms,
        goodput_rps=per_second(good),
        ttft_ms=describe([value / _NS_PER_MS for value in map(ttft_ns, succeeded) if value is not None]),
        tpot_ms=tpot_stats,
        itl_ms=describe([value / _NS_PER_MS for record in succeeded for value in itl_samples_ns(record)]),
        e2e_ms=describe([value / _NS_PER_MS for value in map(e2e_ns, succeeded) if value is not None]),
        isl_mismatch=isl_mismatch,
        osl_mismatch=osl_mismatch,
        mean_isl=input_total / len(succeeded) if succeeded else None,
        mean_osl=output_total / len(succeeded) if succeeded else None,
        started_wall_ns=min((record.send_wall_ns for record in measured), default=None),
    )

    flags = validity_flags(measured, succeeded, isl_mismatch, osl_mismatch, check_isl)
    summary["valid"] = not flags
    summary["flags"] = flags
    return summary


def validity_flags(
    measured: Sequence[RequestRecord],
    succeeded: Sequence[RequestRecord],
    isl_mismatch: int,
    osl_mismatch: int,
    check_isl: bool,
) -> list[str]:
    """Return the reasons why a level's figures cannot be trusted, or [] for a valid level."""
    if not measured:
        return ["no measured requests"]

    flags: list[str] = []
    failed = [record for record in measured if not record.succeeded]
    error_rate = len(failed) / len(measured)
    if error_rate > MAX_ERROR_RATE:
        causes = ", ".join(f"{kind} {count}" for kind, count in Counter(r.error_type for r in failed).most_common())
        flags.append(f"error_rate {error_rate:.3g} > {MAX_ERROR_RATE} ({causes})")

    if not succeeded:
        return flags

    checks = [("osl_mismatch", osl_mismatch)]
    if check_isl:
        checks.insert(0, ("isl_mismatch", isl_mismatch))
    for name, count in checks:
        rate = count / len(succeeded)
        if rate > MAX_MISMATCH_RATE:
            flags.append(f"{name} {count}/{len(succeeded)} = {rate:.3g} > {MAX_MISMATCH_RATE}")

    missing = sum(1 for r in succeeded if r.usage_prompt_tokens is None or r.usage_completion_tokens is None)
    if missing:
        flags.append(f"usage missing in {missing}/{len(succeeded)} responses, so ISL and OSL are client-side counts")
    return flags
