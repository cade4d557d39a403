"""Cross-check of client token counts against the server's Prometheus counters."""

import pandas as pd

from harness.loadgen.crosscheck import apply_cross_check, counter_delta, cross_check_tokens
from harness.loadgen.records import RequestRecord


def record(request_id: int, prompt: int | None, completion: int | None) -> RequestRecord:
    return RequestRecord(
        request_id=request_id, warmup=False, target_isl=100, target_osl=10,
        scheduled_perf_ns=0, send_perf_ns=0, send_wall_ns=0, headers_perf_ns=1,
        token_perf_ns=[2], token_counts=[1], end_perf_ns=3,
        usage_prompt_tokens=prompt, usage_completion_tokens=completion,
        status_code=200, error_type=None, error_message=None,
    )


def metrics(rows: list[tuple[str, str, int, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"level": level, "worker": worker, "wall_ns": perf, "perf_ns": perf, "metric": metric,
          "name": f"sim:{metric}", "value": value, "series": 1}
         for level, worker, perf, metric, value in rows]
    )


SERVER = metrics([
    # Prompt counter 1000 -> 1200 and generation counter 50 -> 70 during level c2.
    ("c2", "aggregated-0", 1, "prompt_tokens_total", 1000.0),
    ("c2", "aggregated-0", 2, "prompt_tokens_total", 1200.0),
    ("c2", "aggregated-0", 1, "generation_tokens_total", 50.0),
    ("c2", "aggregated-0", 2, "generation_tokens_total", 70.0),
    ("c1", "aggregated-0", 0, "prompt_tokens_total", 0.0),
])


def test_counter_delta_last_minus_first():
    assert counter_delta(SERVER, "c2", "prompt_tokens_total") == 200.0
    assert counter_delta(SERVER, "c2", "generation_tokens_total") == 20.0


def test_counter_delta_one_sample_is_none():
    assert counter_delta(SERVER, "c1", "prompt_tokens_total") is None


def test_matching_counts_keep_level_valid():
    # Two requests of 100 prompt and 10 generated tokens: 200 and 20, as the server counted.
    records = [record(0, 100, 10), record(1, 100, 10)]
    summary = {"valid": True, "flags": []}

    apply_cross_check(summary, cross_check_tokens(records, SERVER, "c2"))

    assert summary["valid"] is True
    assert summary["flags"] == []
    assert summary["server_token_check"]["prompt_tokens_total"]["relative_gap"] == 0.0


def test_gap_above_tolerance_flags_level():
    # The client saw 2 x 9 = 18 generated tokens but the server counted 20: 11.1 % apart.
    records = [record(0, 100, 9), record(1, 100, 9)]
    summary = {"valid": True, "flags": []}

    apply_cross_check(summary, cross_check_tokens(records, SERVER, "c2"))

    assert summary["valid"] is False
    assert summary["flags"] == [
        "generation_tokens_total: server counted 20 tokens, client 18 (11.1% apart, tolerance 1%)"
    ]


def test_missing_usage_skips_check():
    records = [record(0, 100, 10), record(1, None, None)]

    assert cross_check_tokens(records, SERVER, "c2") == []


def test_disaggregated_workers_not_checked():
    server = metrics([
        ("c2", "prefill-0", 1, "prompt_tokens_total", 0.0),
        ("c2", "prefill-0", 2, "prompt_tokens_total", 999.0),
    ])

    assert cross_check_tokens([record(0, 100, 10)], server, "c2") == []
