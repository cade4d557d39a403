"""Per-request metrics, as pure functions over one RequestRecord.

Latency metrics return None (or no samples) for a failed request or when they are
undefined. summary.py aggregates them into a level's summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # records.py imports this module for its derived columns, so the import is for types only.
    from harness.loadgen.records import RequestRecord

_NS_PER_MS = 1_000_000


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


def e2e_from_scheduled_ns(record: RequestRecord) -> int | None:
    """E2E latency from the scheduled send = last token event - scheduled send.

    It adds the send lag, the time a request waited for a free slot or for the client,
    to e2e_ns(). None for a failed request or one without tokens.
    """
    if not record.succeeded or not record.token_perf_ns:
        return None
    return record.token_perf_ns[-1] - record.scheduled_perf_ns


def send_lag_ns(record: RequestRecord) -> int:
    """Send lag = actual send - scheduled send, for every record, failed ones included."""
    return record.send_perf_ns - record.scheduled_perf_ns


def isl_delta(record: RequestRecord) -> int | None:
    """usage.prompt_tokens - target ISL, or None for a failed request or missing usage."""
    if not record.succeeded or record.usage_prompt_tokens is None:
        return None
    return record.usage_prompt_tokens - record.target_isl


def osl_delta(record: RequestRecord) -> int | None:
    """usage.completion_tokens - target OSL, or None for a failed request or missing usage."""
    if not record.succeeded or record.usage_completion_tokens is None:
        return None
    return record.usage_completion_tokens - record.target_osl


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
