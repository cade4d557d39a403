"""Tests of the steady-state window (harness.loadgen.steady), send and loop lag, and the
validity flags of summarize_level, with hand-made records.

Times are BASE_NS + milliseconds * MS so that the comments read in ms. Every request
has ISL 100 and OSL 2 unless a test sets other values.
"""

import pytest

from harness.loadgen.level import ValidityThresholds
from harness.loadgen.records import RequestRecord
from harness.loadgen.steady import output_tokens_between, steady_state_window_ns
from harness.loadgen.summary import summarize_level

MS = 1_000_000
BASE_NS = 5_000_000_000


def make_record(request_id, scheduled_ms, send_ms, token_ms, end_ms, *, completion_tokens=2, error=None):
    return RequestRecord(
        request_id=request_id,
        warmup=False,
        target_isl=100,
        target_osl=2,
        scheduled_perf_ns=BASE_NS + scheduled_ms * MS,
        send_perf_ns=BASE_NS + send_ms * MS,
        send_wall_ns=0,
        token_perf_ns=[BASE_NS + t * MS for t in token_ms],
        token_counts=[1] * len(token_ms),
        end_perf_ns=BASE_NS + end_ms * MS,
        usage_prompt_tokens=None if error else 100,
        usage_completion_tokens=None if error else completion_tokens,
        error_type=error,
    )


# Closed loop with 2 slots: R1 and R2 start together (scheduled at 0 ms), R3 and R4
# take over their slots when they end.
CLOSED = [
    make_record(1, 0, 0, [10, 20], 20),
    make_record(2, 0, 2, [12, 22], 22),
    make_record(3, 20, 20, [30, 40], 40),
    make_record(4, 22, 22, [32, 42], 42),
]


def summarize(records, concurrency=2, request_rate=None, loop_lag_ns=(), validity=ValidityThresholds()):
    return summarize_level(
        records,
        concurrency=concurrency,
        request_rate=request_rate,
        num_gpus=2,
        target_isl=100,
        target_osl=2,
        warmup_requests=0,
        slo_ttft_ms=None,
        slo_itl_ms=None,
        loop_lag_ns=loop_lag_ns,
        validity=validity,
    )


def test_closed_window_from_cth_to_last_send():
    # sends sorted: 0, 2, 20, 22 ms; the 2nd send (2 ms) to the last (22 ms)
    assert steady_state_window_ns(CLOSED, concurrency=2, open_loop=False) == (BASE_NS + 2 * MS, BASE_NS + 22 * MS)


def test_closed_window_needs_c_records():
    assert steady_state_window_ns(CLOSED[:1], concurrency=2, open_loop=False) is None


def test_closed_steady_state_throughput():
    steady = summarize(CLOSED)["steady_state"]

    # window 2 .. 22 ms = 0.020 s, starting 2 ms after the first scheduled send
    assert steady["start_offset_s"] == pytest.approx(0.002)
    assert steady["duration_s"] == pytest.approx(0.020)
    # requests ending inside: R1 (20 ms) and R2 (22 ms); 2 / 0.020 s
    assert steady["completed"] == 2
    assert steady["request_throughput_rps"] == pytest.approx(100.0)
    # first tokens inside: R1 (10 ms), R2 (12 ms); 2 x 100 tokens / 0.020 s
    assert steady["input_throughput_tps"] == pytest.approx(10_000.0)
    # token events inside: R1 at 10 and 20, R2 at 12 and 22 ms; 4 tokens / 0.020 s
    assert steady["output_throughput_tps"] == pytest.approx(200.0)
    assert steady["total_throughput_tps"] == pytest.approx(10_200.0)
    # each / 2 GPUs
    assert steady["output_throughput_tps_per_gpu"] == pytest.approx(100.0)
    assert steady["request_throughput_rps_per_gpu"] == pytest.approx(50.0)


def test_whole_window_differs_from_steady_state():
    summary = summarize(CLOSED)

    # first send 0 ms to last end 42 ms: 8 output tokens / 0.042 s
    assert summary["output_throughput_tps"] == pytest.approx(8 / 0.042)


def test_open_window_first_to_last_scheduled():
    records = [
        make_record(1, 0, 1, [10, 15], 15),
        make_record(2, 8, 9, [18, 26], 26),
        make_record(3, 20, 21, [30, 35], 35),
    ]

    steady = summarize(records, concurrency=None, request_rate=100.0)["steady_state"]

    # scheduled 0 .. 20 ms; tokens inside at 10, 15, 18 ms; R1 ends inside
    assert steady["start_offset_s"] == 0.0
    assert steady["duration_s"] == pytest.approx(0.020)
    assert steady["output_throughput_tps"] == pytest.approx(150.0)
    assert steady["completed"] == 1


def test_steady_state_counts_failures_apart():
    records = CLOSED + [make_record(5, 0, 3, [], 15, error="http_error")]

    steady = summarize(records, concurrency=2)["steady_state"]

    # sends 0, 2, 3, 20, 22: window 2 .. 22 ms; the failure ended at 15 ms
    assert steady["failed"] == 1
    assert steady["completed"] == 2


def test_tokens_scaled_to_final_usage():
    # Two events counted 1 each, but usage reports 6 tokens: each event stands for 3.
    record = make_record(1, 0, 0, [10, 20], 20, completion_tokens=6)

    assert output_tokens_between(record, BASE_NS + 5 * MS, BASE_NS + 15 * MS) == pytest.approx(3.0)


def test_steady_state_none_without_records():
    steady = summarize([])["steady_state"]

    assert steady["duration_s"] is None
    assert steady["output_throughput_tps"] is None


def test_send_lag_stats():
    records = [make_record(1, 0, 1, [10, 15], 15), make_record(2, 8, 11, [18, 26], 26)]

    summary = summarize(records, concurrency=None, request_rate=100.0)

    # lags 1 and 3 ms
    assert summary["send_lag_ms"]["mean"] == pytest.approx(2.0)
    assert summary["send_lag_ms"]["max"] == pytest.approx(3.0)


def test_send_lag_flags_open_loop():
    records = [make_record(1, 0, 15, [20, 25], 25), make_record(2, 8, 23, [28, 36], 36)]

    summary = summarize(records, concurrency=None, request_rate=100.0)

    # both lags 15 ms > 10 ms
    assert summary["flags"][0].startswith("send_lag_ms p99 15 > 10.0")


def test_send_lag_ignored_in_closed_loop():
    records = [make_record(i, 0, 15, [20, 25], 25) for i in range(4)]

    assert summarize(records, concurrency=2)["flags"] == []


def test_send_lag_threshold_from_spec():
    records = [make_record(1, 0, 15, [20, 25], 25)]

    summary = summarize(records, concurrency=None, request_rate=100.0, validity=ValidityThresholds(max_send_lag_ms=20))

    assert summary["valid"] is True


def test_loop_lag_stats_and_flag():
    summary = summarize(CLOSED, loop_lag_ns=[25 * MS, 25 * MS])

    assert summary["client_loop_lag_ms"]["p99"] == pytest.approx(25.0)
    assert summary["flags"][0].startswith("client_loop_lag_ms p99 25 > 20.0")


def test_loop_lag_without_samples_is_null():
    summary = summarize(CLOSED)

    assert summary["client_loop_lag_ms"]["p99"] is None
    assert summary["valid"] is True


def test_errors_by_type():
    records = CLOSED + [
        make_record(5, 0, 3, [], 15, error="http_error"),
        make_record(6, 0, 3, [], 15, error="http_error"),
        make_record(7, 0, 3, [], 15, error="ttft_timeout"),
    ]

    assert summarize(records)["errors_by_type"] == {"http_error": 2, "ttft_timeout": 1}


def test_e2e_from_scheduled_stats():
    records = [make_record(1, 0, 1, [10, 15], 15), make_record(2, 8, 11, [18, 26], 26)]

    summary = summarize(records, concurrency=None, request_rate=100.0)

    # 15 - 0 and 26 - 8 ms
    assert summary["e2e_from_scheduled_ms"]["mean"] == pytest.approx(16.5)
    # 15 - 1 and 26 - 11 ms
    assert summary["e2e_ms"]["mean"] == pytest.approx(14.5)
