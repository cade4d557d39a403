"""Tests of the benchmark's arithmetic: steady window, matching, errors, flags.

Not part of the default test run (testpaths is tests/); run them with
`python -m pytest benchmarks/test_bench_analysis.py -q`.
"""

import json
import os
import subprocess

import numpy as np
import pytest

from benchmarks.ground_truth import (
    ObservedRequest,
    TruthEntry,
    match_requests,
    measure_accuracy,
    read_token_log,
    summarize_errors_ms,
)
from benchmarks.loadgen_bench import parse_cpu_list
from benchmarks.report import LevelRow, evaluate_targets, judge_row
from benchmarks.sampling import Sample, WindowFigures, process_tree, process_wait_s, steady_window, tree_cpu_s
from benchmarks.tokenizer import byte_alphabet
from harness.errors import ConfigError

MS = 1_000_000


def sample(t_s: float, tokens: float, client_cpu_s: float, server_cpu_s: float, running: float = 4) -> Sample:
    return Sample(
        perf_ns=round(t_s * 1e9), tokens=tokens, steps=tokens / 4, running=running,
        schedule_resets=0, server_cpu_s=server_cpu_s, client_cpu_s=client_cpu_s,
    )


def test_window_trims_ramp_and_drain():
    # 1000 tokens in all; the window runs from the first sample with >= 100 tokens (t=1)
    # to the last with <= 900 tokens (t=4): 800 tokens in 3 s = 266.67 events/s.
    samples = [
        sample(0, 0, 0.0, 0.0),
        sample(1, 100, 0.5, 0.1),
        sample(2, 400, 1.1, 0.4),
        sample(3, 700, 1.7, 0.7),
        sample(4, 900, 2.3, 0.9),
        sample(5, 1000, 2.6, 1.0),
    ]
    window = steady_window(samples)
    assert window is not None
    assert window.events == 800
    assert window.events_per_s == pytest.approx(800 / 3)
    # Client: 2.3 - 0.5 = 1.8 CPU s over 3 s = 0.6 cores, 1.8 s / 800 events = 2250 us.
    assert window.client_cpu_share == pytest.approx(0.6)
    assert window.client_cpu_us_per_event == pytest.approx(2250)
    # Server: 0.9 - 0.1 = 0.8 CPU s over 3 s.
    assert window.server_cpu_share == pytest.approx(0.8 / 3)
    # Steps are tokens / 4 here: 200 steps in 3 s.
    assert window.steps_per_s == pytest.approx(200 / 3)
    assert window.steady


def test_window_without_tokens_is_none():
    assert steady_window([sample(0, 5, 0, 0), sample(1, 5, 1, 1)]) is None


def test_window_short_level_falls_back():
    # Only three samples: no two samples lie between 10% and 90% of the tokens, so the
    # window spans the whole emission, from t=0 to t=2.
    window = steady_window([sample(0, 0, 0, 0), sample(1, 50, 1, 0), sample(2, 100, 2, 0)])
    assert window is not None
    assert not window.steady
    assert window.events_per_s == pytest.approx(50)


def test_accuracy_by_response_id():
    # Emissions at 10, 11, 12 ms; arrivals at 10.5, 11.5, 12.75 ms.
    # TTFT error 0.5 ms; ITL errors (1.0 - 1.0) = 0 and (1.25 - 1.0) = 0.25 ms.
    truth = [TruthEntry("cmpl-a", (10 * MS, 11 * MS, 12 * MS), 1_000 * MS)]
    observed = [ObservedRequest("cmpl-a", 9 * MS, 10_500_000, (10_500_000, 11_500_000, 12_750_000), "perf")]
    figures = measure_accuracy(observed, truth)
    assert figures.match_method == "response id"
    assert figures.ttft_error_ms["mean"] == pytest.approx(0.5)
    assert figures.itl_error_ms["abs_max"] == pytest.approx(0.25)
    assert figures.itl_error_ms["samples"] == 2
    assert figures.arrivals_before_emission == 0


def test_accuracy_wall_clock_shift():
    # Emission perf times 5 and 7 ms, first wall stamp 100 ms: wall emissions 100 and 102 ms.
    # Arrivals on the wall clock at 101 and 103 ms: TTFT error 1 ms, ITL error 0.
    truth = [TruthEntry("cmpl-b", (5 * MS, 7 * MS), 100 * MS)]
    observed = [ObservedRequest("cmpl-b", 90 * MS, 101 * MS, (101 * MS, 103 * MS), "wall")]
    figures = measure_accuracy(observed, truth)
    assert figures.ttft_error_ms["mean"] == pytest.approx(1.0)
    assert figures.itl_error_ms["abs_max"] == pytest.approx(0.0)


def test_match_by_send_order():
    # Without ids, the earlier send pairs with the earlier first emission.
    truth = [TruthEntry("x", (20 * MS,), 0), TruthEntry("y", (10 * MS,), 0)]
    late = ObservedRequest(None, 5 * MS, 21 * MS, (21 * MS,), "perf")
    early = ObservedRequest(None, 1 * MS, 11 * MS, (11 * MS,), "perf")
    pairs, method = match_requests([late, early], truth)
    assert method == "send order"
    assert pairs[0] == (early, truth[1])
    assert pairs[1] == (late, truth[0])


def test_accuracy_skips_first_wave():
    # The request sent first has a 9 ms TTFT error and is skipped; the other one has 1 ms.
    truth = [TruthEntry("a", (10 * MS,), 0), TruthEntry("b", (20 * MS,), 0)]
    observed = [
        ObservedRequest("a", 1 * MS, 19 * MS, None, "perf"),
        ObservedRequest("b", 2 * MS, 21 * MS, None, "perf"),
    ]
    figures = measure_accuracy(observed, truth, skip_first=1)
    assert figures.ttft_error_ms["samples"] == 1
    assert figures.ttft_error_ms["mean"] == pytest.approx(1.0)
    assert figures.itl_error_ms["samples"] is None


def test_arrival_before_emission_counted():
    truth = [TruthEntry("a", (10 * MS, 12 * MS), 0)]
    observed = [ObservedRequest("a", 0, 11 * MS, (11 * MS, 11_500_000), "perf")]
    assert measure_accuracy(observed, truth).arrivals_before_emission == 1


def test_error_percentiles_linear():
    # |errors| sorted: 0, 1, 2, 3, 4 ms. p50 is rank 2 -> 2 ms; p99 is rank 3.96 -> 3.96 ms.
    errors_ns = np.array([-4, 3, 0, -1, 2], dtype=np.int64) * MS
    summary = summarize_errors_ms(errors_ns)
    assert summary["mean"] == pytest.approx(0.0)
    assert summary["abs_p50"] == pytest.approx(2.0)
    assert summary["abs_p99"] == pytest.approx(3.96)


def test_token_log_keeps_partial_line(tmp_path):
    path = tmp_path / "token_log.jsonl"
    line = json.dumps({"request_id": "cmpl-1", "prompt_tokens": 4, "emit_perf_ns": [1, 2], "emit_wall_ns_first": 9})
    path.write_text(line + "\n" + '{"request_id": "cmpl-2", "pro')
    entries, offset = read_token_log(path)
    assert [entry.response_id for entry in entries] == ["cmpl-1"]
    assert offset == len(line) + 1


def test_process_tree_finds_child():
    child = subprocess.Popen(["sleep", "5"])
    try:
        assert child.pid in process_tree(os.getpid())
        assert tree_cpu_s(process_tree(os.getpid())) > 0
        assert process_wait_s(os.getpid()) >= 0
    finally:
        child.kill()
        child.wait()


def test_cpu_list_ranges():
    assert parse_cpu_list("0") == {0}
    assert parse_cpu_list("0,2") == {0, 2}
    assert parse_cpu_list("1-3,5") == {1, 2, 3, 5}


def test_cpu_list_invalid():
    with pytest.raises(ConfigError):
        parse_cpu_list("a-b")


def test_byte_alphabet_unique_printable():
    alphabet = byte_alphabet()
    assert len(set(alphabet)) == 256
    assert not any(char.isspace() for char in alphabet)


def window(server_cpu_share: float, running: float = 32, server_wait_share: float = 0.0) -> WindowFigures:
    return WindowFigures(
        duration_s=2.0, events=100_000, events_per_s=50_000, client_cpu_share=0.5,
        client_cpu_us_per_event=10.0, server_cpu_share=server_cpu_share, server_cpu_us_per_event=8.0,
        server_wait_share=server_wait_share, sampler_cpu_share=0.01, mean_running_requests=running,
        steps_per_s=1000, schedule_resets=0, steady=True,
    )


def test_saturated_server_invalidates_row():
    row = LevelRow("harness", 1, 32, 320, "sweep", exit_code=0, window=window(0.85))
    judge_row(row, max_server_cpu_share=0.8)
    assert not row.valid
    assert row.flags[0].startswith("server saturated")


def test_contended_server_invalidates_row():
    row = LevelRow("harness", 1, 32, 320, "sweep", exit_code=0, window=window(0.3, server_wait_share=0.25))
    judge_row(row, max_server_cpu_share=0.8)
    assert row.flags == ["server waited for its CPU 25% of the time"]


def test_short_concurrency_is_a_note():
    # 20 running of 32 requested is below 0.9 x 32 = 28.8, which is noted but stays valid.
    row = LevelRow("aiperf", 1, 32, 320, "sweep", exit_code=0, window=window(0.3, running=20))
    judge_row(row, max_server_cpu_share=0.8)
    assert row.valid
    assert row.notes == ["server saw 20 of 32 requests running"]


def test_efficiency_target_ratio():
    # harness: 1e6 / 10 us = 100k events per CPU s; aiperf: 1e6 / 40 us = 25k; ratio 4.
    harness_row = LevelRow("harness", 1, 32, 320, "sweep", exit_code=0, window=window(0.3))
    slow = window(0.3)
    other_row = LevelRow(
        "aiperf", 1, 32, 320, "sweep", exit_code=0,
        window=WindowFigures(**{**slow.__dict__, "client_cpu_us_per_event": 40.0}),
    )
    targets = evaluate_targets([harness_row, other_row], half_max_row=None)
    assert targets["events_per_core"]["ratio"] == pytest.approx(4.0)
    assert targets["events_per_core"]["result"] == "pass"
    assert targets["accuracy_at_half_max"]["result"] == "not measured"
