"""Tests of harness.loadgen.metrics and summary with hand-made records and integer ns timestamps.

Times are written as BASE_NS + milliseconds * MS so that the arithmetic in the comments
reads in ms. BASE_NS stands for an arbitrary perf_counter origin.
"""

import pytest

from harness.loadgen.metrics import (
    e2e_from_scheduled_ns,
    isl_delta,
    itl_samples_ns,
    mean_itl_ns,
    meets_slo,
    osl_delta,
    output_tokens,
    send_lag_ns,
    tpot_ns,
    ttft_ns,
)
from harness.loadgen.records import RequestRecord
from harness.loadgen.summary import summarize_level

MS = 1_000_000
BASE_NS = 5_000_000_000
WALL_NS = 1_700_000_000_000_000_000


def make_record(request_id, send_ms, token_ms, counts, end_ms, *, usage=(100, None), warmup=False, error=None):
    prompt_tokens, completion_tokens = usage
    if completion_tokens is None and error is None:
        completion_tokens = sum(counts)
    return RequestRecord(
        request_id=request_id,
        warmup=warmup,
        target_isl=100,
        target_osl=6,
        scheduled_perf_ns=BASE_NS + send_ms * MS,
        send_perf_ns=BASE_NS + send_ms * MS,
        send_wall_ns=WALL_NS + send_ms * MS,
        headers_perf_ns=None if error else BASE_NS + (send_ms + 1) * MS,
        token_perf_ns=[BASE_NS + t * MS for t in token_ms],
        token_counts=list(counts),
        end_perf_ns=BASE_NS + end_ms * MS,
        usage_prompt_tokens=None if error else prompt_tokens,
        usage_completion_tokens=None if error else completion_tokens,
        status_code=500 if error == "http_error" else 200,
        error_type=error,
        error_message=None if error is None else "boom",
    )


# A: sent at 0 ms, events at 10 ms (2 tokens), 12 ms (1), 15 ms (3); 6 tokens in all.
A = make_record(1, 0, [10, 12, 15], [2, 1, 3], 16)
# B: sent at 4 ms, six events of one token at 24, 25, 26, 27, 28, 29 ms.
B = make_record(2, 4, [24, 25, 26, 27, 28, 29], [1] * 6, 30)
# C: failed with HTTP 500, sent at 6 ms and ended at 40 ms.
C = make_record(3, 6, [], [], 40, error="http_error")
# W: a warmup request long before the window.
W = make_record(0, -100, [-90], [6], -80, warmup=True)


def summarize(records, slo_ttft_ms=None, slo_itl_ms=None, check_isl=True):
    return summarize_level(
        records,
        concurrency=2,
        request_rate=None,
        num_gpus=2,
        target_isl=100,
        target_osl=6,
        warmup_requests=1,
        slo_ttft_ms=slo_ttft_ms,
        slo_itl_ms=slo_itl_ms,
        check_isl=check_isl,
    )


def test_ttft_first_token_event_minus_send():
    # 10 ms - 0 ms
    assert ttft_ns(A) == 10 * MS


def test_tpot_multi_token_first_event():
    # (15 ms - 10 ms) / (6 tokens - 2 in the first event) = 1.25 ms
    assert tpot_ns(A) == 1.25 * MS


def test_tpot_undefined_when_all_tokens_in_first_event():
    # OSL 4 - 4 tokens in the first event = 0
    record = make_record(9, 0, [10], [4], 11)

    assert tpot_ns(record) is None


def test_tpot_uses_usage_over_client_counts():
    # usage reports 9 tokens: (15 - 10) / (9 - 2) = 5/7 ms
    record = make_record(9, 0, [10, 12, 15], [2, 1, 3], 16, usage=(100, 9))

    assert tpot_ns(record) == pytest.approx(5 / 7 * MS)


def test_output_tokens_falls_back_to_counts():
    record = make_record(9, 0, [10, 12], [2, 1], 13)
    record.usage_completion_tokens = None

    # 2 + 1
    assert output_tokens(record) == 3


def test_itl_one_sample_per_token():
    # 12 - 10 = 2 ms for 1 token; 15 - 12 = 3 ms for 3 tokens -> 3 samples of 1 ms
    assert itl_samples_ns(A) == [2 * MS, 1 * MS, 1 * MS, 1 * MS]


def test_mean_itl_per_request():
    # (15 - 10) ms / (1 + 3) tokens = 1.25 ms
    assert mean_itl_ns(A) == 1.25 * MS


def test_failed_request_has_no_latency():
    assert ttft_ns(C) is None
    assert tpot_ns(C) is None
    assert itl_samples_ns(C) == []


def test_summary_counts_and_window():
    summary = summarize([W, A, B, C])

    assert summary["completed"] == 2
    assert summary["failed"] == 1
    # 1 failed of 3 measured; W is warmup
    assert summary["error_rate"] == pytest.approx(1 / 3)
    # first measured send 0 ms (A) to last measured end 40 ms (C, failed)
    assert summary["duration_s"] == pytest.approx(0.040)


def test_summary_throughput_over_window():
    summary = summarize([W, A, B, C])

    # 2 successful requests / 0.040 s
    assert summary["request_throughput_rps"] == pytest.approx(50.0)
    # (100 + 100) prompt tokens / 0.040 s
    assert summary["input_throughput_tps"] == pytest.approx(5000.0)
    # (6 + 6) output tokens / 0.040 s
    assert summary["output_throughput_tps"] == pytest.approx(300.0)
    # 5000 + 300
    assert summary["total_throughput_tps"] == pytest.approx(5300.0)
    # each / 2 GPUs
    assert summary["request_throughput_rps_per_gpu"] == pytest.approx(25.0)
    assert summary["input_throughput_tps_per_gpu"] == pytest.approx(2500.0)
    assert summary["output_throughput_tps_per_gpu"] == pytest.approx(150.0)
    assert summary["total_throughput_tps_per_gpu"] == pytest.approx(2650.0)


def test_summary_latency_excludes_failed():
    summary = summarize([W, A, B, C])

    # TTFT: A 10 ms, B 24 - 4 = 20 ms
    assert summary["ttft_ms"]["mean"] == pytest.approx(15.0)
    assert summary["ttft_ms"]["std"] == pytest.approx(5.0)
    # rank 0.9 * 1 -> 10 + 0.9 * 10
    assert summary["ttft_ms"]["p90"] == pytest.approx(19.0)
    # E2E: A 15 ms, B 29 - 4 = 25 ms
    assert summary["e2e_ms"]["mean"] == pytest.approx(20.0)
    # TPOT: A 1.25 ms, B (29 - 24) / 5 = 1 ms
    assert summary["tpot_ms"]["mean"] == pytest.approx(1.125)
    # 1000 / 1.125
    assert summary["interactivity_tps_per_user"] == pytest.approx(888.888889)
    # ITL: A [2, 1, 1, 1] and B [1] * 5 -> 9 samples, sum 10 ms
    assert summary["itl_ms"]["mean"] == pytest.approx(10 / 9)
    assert summary["itl_ms"]["max"] == pytest.approx(2.0)
    assert summary["itl_ms"]["p50"] == pytest.approx(1.0)


def test_summary_means_and_labels():
    summary = summarize([W, A, B, C])

    assert summary["level"] == "c2"
    assert summary["mean_isl"] == 100
    assert summary["mean_osl"] == 6
    assert summary["started_wall_ns"] == WALL_NS
    assert summary["request_rate"] is None


def test_summary_flags_error_rate():
    summary = summarize([W, A, B, C])

    assert summary["valid"] is False
    assert summary["flags"] == ["error_rate 0.333 > 0.05 (http_error 1)"]


def test_summary_clean_level_is_valid():
    summary = summarize([A, B])

    assert summary["valid"] is True
    assert summary["flags"] == []


def test_summary_osl_mismatch_flagged():
    short = make_record(4, 0, [10, 12], [1, 4], 13)

    summary = summarize([A, short])

    # short has 5 output tokens against a target of 6: 1 of 2 successful requests
    assert summary["osl_mismatch"] == 1
    assert summary["flags"] == ["osl_mismatch 1/2 = 0.5 > 0.01"]


def test_summary_isl_mismatch_unflagged_for_chat():
    chat = make_record(4, 0, [10, 12, 15], [2, 1, 3], 16, usage=(117, 6))

    summary = summarize([A, chat], check_isl=False)

    assert summary["isl_mismatch"] == 1
    assert summary["valid"] is True


def test_summary_tpot_undefined_excluded():
    single = make_record(4, 0, [10], [6], 11)

    summary = summarize([A, single])

    # only A has a TPOT
    assert summary["tpot_ms"]["mean"] == pytest.approx(1.25)
    assert summary["tpot_ms"]["max"] == pytest.approx(1.25)


def test_summary_all_failed_has_null_latency():
    summary = summarize([C])

    assert summary["completed"] == 0
    assert summary["ttft_ms"]["p99"] is None
    assert summary["interactivity_tps_per_user"] is None
    # 0 successful requests / 0.034 s
    assert summary["request_throughput_rps"] == 0.0


def test_summary_without_records():
    summary = summarize([])

    assert summary["duration_s"] is None
    assert summary["flags"] == ["no measured requests"]


def test_summary_usage_missing_flagged():
    record = make_record(4, 0, [10, 12, 15], [2, 1, 3], 16)
    record.usage_prompt_tokens = None

    summary = summarize([A, record])

    assert summary["flags"] == ["usage missing in 1/2 responses, so ISL and OSL are client-side counts"]


def test_goodput_ttft_limit():
    # A: TTFT 10 ms passes a 15 ms limit; B: 20 ms fails. 1 request / 0.040 s
    summary = summarize([A, B, C], slo_ttft_ms=15)

    assert summary["goodput_rps"] == pytest.approx(25.0)


def test_goodput_itl_limit():
    # mean ITL: A 1.25 ms fails a 1.2 ms limit; B 1 ms passes. 1 request / 0.040 s
    summary = summarize([A, B, C], slo_itl_ms=1.2)

    assert summary["goodput_rps"] == pytest.approx(25.0)


def test_goodput_without_limits_counts_successes():
    # 2 successful / 0.040 s
    summary = summarize([A, B, C])

    assert summary["goodput_rps"] == pytest.approx(50.0)


def test_meets_slo_single_event_passes_itl():
    single = make_record(4, 0, [10], [6], 11)

    assert meets_slo(single, slo_ttft_ms=None, slo_itl_ms=0.001) is True


def test_meets_slo_failed_never():
    assert meets_slo(C, slo_ttft_ms=None, slo_itl_ms=None) is False


def test_send_lag_actual_minus_scheduled():
    record = make_record(9, 5, [10], [6], 11)
    record.scheduled_perf_ns = BASE_NS + 2 * MS

    # sent at 5 ms, due at 2 ms
    assert send_lag_ns(record) == 3 * MS


def test_e2e_from_scheduled_adds_send_lag():
    record = make_record(9, 5, [10, 12], [3, 3], 13)
    record.scheduled_perf_ns = BASE_NS + 2 * MS

    # last token 12 ms - scheduled 2 ms
    assert e2e_from_scheduled_ns(record) == 10 * MS


def test_deltas_against_targets():
    short = make_record(4, 0, [10, 12], [1, 4], 13, usage=(98, 5))

    # usage 98 - target 100; usage 5 - target 6
    assert isl_delta(short) == -2
    assert osl_delta(short) == -1


def test_deltas_none_for_failed():
    assert isl_delta(C) is None
    assert osl_delta(C) is None
