"""Unit tests of the report's pure functions: frontier, worker roles, counters, capacities, HTML."""

import numpy as np
import pandas as pd
import pytest

from harness.errors import SolverError
from harness.loadgen.sampler import metrics_frame
from harness.report.html_tables import HtmlTable, TableRow
from harness.report.page import PageContent, render_page
from harness.report.pareto import pareto_frontier
from harness.report.ratematch import ClientLevel, IsolatedCapacity, PoolShape, decode_batch_limit, isolated_capacity, rate_match
from harness.report.server_metrics import counter_deltas, interior_mean, worker_role
from harness.solver.capacity import Role


def test_pareto_frontier_drops_dominated():
    # (40, 150) dominates (10, 100), (20, 150) and (30, 80). Each of (60, 90) and
    # (80, 20) has a higher x than every point above it. Frontier: indices 2, 3, 4.
    xs = [10, 20, 40, 60, 80, 30]
    ys = [100, 150, 150, 90, 20, 80]
    assert pareto_frontier(xs, ys) == [2, 3, 4]


def test_pareto_frontier_keeps_first_duplicate():
    assert pareto_frontier([5, 5, 1], [7, 7, 9]) == [2, 0]


def test_pareto_frontier_empty():
    assert pareto_frontier([], []) == []


def test_pareto_frontier_length_mismatch():
    with pytest.raises(ValueError, match="one y per x"):
        pareto_frontier([1, 2], [1])


@pytest.mark.parametrize(("worker", "role"), [
    ("prefill-0", "prefill"),
    ("decode-12", "decode"),
    ("aggregated-0", "aggregated"),
    ("my-router", "my-router"),
    ("worker", "worker"),
])
def test_worker_role_names(worker, role):
    assert worker_role(worker) == role


def _rows(worker: str, metric: str, samples: list[tuple[int, float]]) -> list[dict]:
    return [{"level": "c1", "worker": worker, "wall_ns": ns, "perf_ns": ns, "metric": metric,
             "name": metric, "value": value, "series": 1} for ns, value in samples]


def test_counter_deltas_skip_restart():
    frame = metrics_frame(
        _rows("prefill-0", "prompt_tokens_total", [(0, 500.0), (2_000_000_000, 100.0)])
        + _rows("prefill-1", "prompt_tokens_total", [(0, 0.0), (4_000_000_000, 800.0)])
    )
    deltas = counter_deltas(frame, "prompt_tokens_total", "prefill")
    assert [delta.worker for delta in deltas] == ["prefill-1"]
    # 800 tokens in 4 s.
    assert deltas[0].rate_per_s == pytest.approx(200.0)


def test_counter_deltas_single_sample():
    frame = metrics_frame(_rows("decode-0", "generation_tokens_total", [(0, 10.0)]))
    assert counter_deltas(frame, "generation_tokens_total", "decode") == []


def test_interior_mean_two_samples():
    frame = metrics_frame(_rows("decode-0", "running_requests", [(0, 0.0), (1, 5.0)]))
    assert interior_mean(frame, "running_requests", "decode-0") is None


@pytest.mark.parametrize(("args", "dp", "limit"), [
    ({"max_running_requests": 64}, 8, 64),
    # vLLM applies max_num_seqs per DP rank: 32 x 4 = 128.
    ({"max_num_seqs": 32}, 4, 128),
    ({"max_batch_size": 16}, 2, 16),
    ({"max_running_requests": "256"}, 1, 256),
    # A cell of the collected table is a numpy integer.
    ({"max_running_requests": np.int64(48)}, 1, 48),
    ({"max_running_requests": None, "max_num_seqs": None}, 1, None),
    ({"max_running_requests": True}, 1, None),
    ({}, 1, None),
])
def test_decode_batch_limit_keys(args, dp, limit):
    assert decode_batch_limit(args, dp) == limit


def _isolated_row(point_id: str, mode: str, level: str, valid: bool, input_tps: float, output_tps: float,
                  isl: int = 1000, osl: int = 100) -> dict:
    return {
        "experiment": "exp", "sweep": "20260101-000000", "point_id": point_id, "level": level,
        "mode.name": mode, "target_isl": isl, "target_osl": osl, "valid": valid, "completed": 10,
        "input_throughput_tps_per_gpu": input_tps, "output_throughput_tps_per_gpu": output_tps,
        "ttft_ms_p90": 100.0, "itl_ms_p90": 10.0, "gpus_per_worker": 8,
        "parallelism.tp": 1, "parallelism.dp": 8, "parallelism.ep": 8, "parallelism.pp": 1,
        "parallelism.dp_attention": True,
    }


def test_isolated_capacity_best_valid():
    table = pd.DataFrame([
        _isolated_row("p1", "prefill", "c16", True, 3000.0, 5.0),
        # Higher throughput but invalid, so it does not count.
        _isolated_row("p1", "prefill", "c32", False, 4000.0, 5.0),
        _isolated_row("p2", "prefill", "c16", True, 2500.0, 5.0),
        _isolated_row("d1", "decode", "c64", True, 100.0, 500.0, isl=128),
    ])
    prefill = isolated_capacity(table, Role.prefill, 1000)
    assert (prefill.point_id, prefill.level, prefill.tps_per_gpu) == ("p1", "c16", 3000.0)
    decode = isolated_capacity(table, Role.decode, 100)
    assert decode.tps_per_gpu == 500.0


def test_isolated_capacity_absent_role():
    table = pd.DataFrame([_isolated_row("p1", "prefill", "c16", True, 3000.0, 5.0)])
    assert isolated_capacity(table, Role.decode, 100) is None


def test_isolated_capacity_other_isl():
    table = pd.DataFrame([_isolated_row("p1", "prefill", "c16", True, 3000.0, 5.0, isl=8192)])
    with pytest.raises(SolverError, match="ISL 1000"):
        isolated_capacity(table, Role.prefill, 1000)


def test_rate_match_isolated_capacities():
    shape = PoolShape(isl=1000, osl=100, prefill_workers=1, decode_workers=2, gpus_per_worker=2,
                      decode_batch_limit=64)
    levels = [ClientLevel("c4", 4.0, True, 4.0, 5000.0, 380.0)]
    prefill = IsolatedCapacity(Role.prefill, "p1", "c16", 3000.0)
    decode = IsolatedCapacity(Role.decode, "d1", "c64", 500.0)
    result = rate_match(shape, levels, None, prefill, decode)
    # Prefill: 3000 tok/s/GPU x (1 worker x 2 GPUs) / ISL 1000 = 6 requests/s.
    assert result.levels[0].prefill_capacity_rps == pytest.approx(6.0)
    # Decode: 500 tok/s/GPU x (2 workers x 2 GPUs) / OSL 100 = 20 requests/s.
    assert result.levels[0].decode_capacity_rps == pytest.approx(20.0)
    assert any("isolated prefill point p1 level c16" in note for note in result.notes)


def test_render_page_escapes_text():
    levels = HtmlTable(headers=("point",), rows=(TableRow(cells=("<b>x</b>",), invalid=True, flags="a & b"),))
    page = PageContent(
        generated="2026-01-01T00:00:00+00:00", harness_version="0.1.0", experiments=("exp",),
        sweeps=(), rate_match=(), timeseries=(), load_images=(), pareto_image=None, frontier=None,
        levels=levels, skipped={1: ["no <disagg> point"]},
    )
    html = render_page(page)
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert "invalid: a &amp; b" in html
    assert "no &lt;disagg&gt; point" in html
    assert '<tr class="invalid">' in html
