"""Tests of solve() on hand-made tables: capacities, the SLO filter, invalid levels, errors."""

import io

import pandas as pd
import pytest
from rich.console import Console

from harness.errors import ConfigError, SolverError
from harness.solver import render_solution, solve


def level_row(point_id: str, mode: str, level: str, tps_per_gpu: float, latency_p90_ms: float,
              gpus_per_worker: int, isl: int = 1000, osl: int = 1000, valid: bool = True,
              completed: int = 64, sweep: str = "2024-05-01_10-00-00") -> dict:
    """One collected row; latency is TTFT for prefill rows and ITL for decode rows."""
    prefill = mode == "prefill"
    return {
        "experiment": f"{mode}_exp",
        "sweep": sweep,
        "point_id": point_id,
        "level": level,
        "mode.name": mode,
        "parallelism.tp": 1,
        "parallelism.dp": gpus_per_worker,
        "parallelism.ep": gpus_per_worker,
        "parallelism.pp": 1,
        "parallelism.dp_attention": True,
        "gpus_per_worker": gpus_per_worker,
        "target_isl": isl if prefill else 128,
        "target_osl": 5 if prefill else osl,
        "completed": completed,
        "valid": valid,
        "flags": "" if valid else "error rate 0.5 > 0.01",
        "input_throughput_tps_per_gpu": tps_per_gpu if prefill else 10.0,
        "output_throughput_tps_per_gpu": 1.0 if prefill else tps_per_gpu,
        "ttft_ms_p90": latency_p90_ms if prefill else 50.0,
        "itl_ms_p90": 1.0 if prefill else latency_p90_ms,
    }


def dep8_dep48_table(extra_rows: list[dict] | None = None) -> pd.DataFrame:
    rows = [
        level_row("p8", "prefill", "c8", 9000.0, 300.0, 8),
        level_row("p8", "prefill", "c32", 13000.0, 900.0, 8),
        level_row("d48", "decode", "c256", 6000.0, 15.0, 48),
        level_row("d48", "decode", "c1024", 9000.0, 40.0, 48),
    ]
    return pd.DataFrame(rows + (extra_rows or []))


def solve_table(table: pd.DataFrame, slo_ttft_ms: float | None = 1000.0,
                slo_itl_ms: float | None = 50.0, isl: int | None = None,
                osl: int | None = None, gpu_budget: int = 512):
    return solve(table, slo_ttft_ms=slo_ttft_ms, slo_itl_ms=slo_itl_ms, percentile=90,
                 isl=isl, osl=osl, gpu_budget=gpu_budget, max_options=5)


def test_solve_dep8_dep48_exact() -> None:
    result = solve_table(dep8_dep48_table())

    # Prefill 13000 tok/s/GPU x 8 GPUs / ISL 1000 = 104 requests/s per server;
    # decode 9000 x 48 / OSL 1000 = 432; ratio 432 / 104 = 4.153846...
    assert result.prefill.best.requests_per_s == 104.0
    assert result.decode.best.requests_per_s == 432.0
    assert result.ratio == pytest.approx(432 / 104, rel=1e-12)
    assert result.isl == 1000
    assert result.osl == 1000


def test_solve_best_option() -> None:
    result = solve_table(dep8_dep48_table())

    # 25P6D: 25 x 8 + 6 x 48 = 488 GPUs, min(2600, 2592) x 1000 / 488 = 5311.48.
    assert result.options[0].label == "25P6D"


def test_solve_ttft_slo_picks_lower_level() -> None:
    result = solve_table(dep8_dep48_table(), slo_ttft_ms=500.0)

    # c32 has TTFT p90 900 > 500 ms, so c8 sets capacity: 9000 x 8 / 1000 = 72 rps.
    assert result.prefill.best.level == "c8"
    assert result.prefill.best.requests_per_s == 72.0
    assert result.prefill.levels_over_slo == 1


def test_solve_itl_slo_picks_lower_level() -> None:
    result = solve_table(dep8_dep48_table(), slo_itl_ms=20.0)

    # c1024 has ITL p90 40 > 20 ms, so c256 sets capacity: 6000 x 48 / 1000 = 288 rps.
    assert result.decode.best.level == "c256"
    assert result.decode.best.requests_per_s == 288.0


def test_solve_no_slo_takes_max() -> None:
    table = dep8_dep48_table([level_row("p8", "prefill", "c64", 14000.0, 5000.0, 8)])
    result = solve_table(table, slo_ttft_ms=None, slo_itl_ms=None)

    # Without a TTFT limit, c64 at 14000 tok/s/GPU wins: 14000 x 8 / 1000 = 112 rps.
    assert result.prefill.best.requests_per_s == 112.0


def test_solve_skips_invalid_level() -> None:
    table = dep8_dep48_table([level_row("p8", "prefill", "c64", 20000.0, 100.0, 8, valid=False)])
    result = solve_table(table)

    assert result.prefill.best.level == "c32"
    assert result.prefill.levels_invalid == 1


def test_solve_skips_zero_completed() -> None:
    table = dep8_dep48_table([level_row("p8", "prefill", "c64", 20000.0, 100.0, 8, completed=0)])
    result = solve_table(table)

    assert result.prefill.best.level == "c32"
    assert result.prefill.levels_without_completions == 1


def test_solve_best_point_by_tps_per_gpu() -> None:
    # TEP8-like point p8b: 12000 tok/s/GPU, below p8's 13000.
    table = dep8_dep48_table([level_row("p8b", "prefill", "c32", 12000.0, 800.0, 8)])
    result = solve_table(table)

    assert result.prefill.best.point_id == "p8"
    assert [point.point_id for point in result.prefill.points] == ["p8", "p8b"]


def test_solve_newest_sweep_wins() -> None:
    newer = level_row("p8", "prefill", "c32", 11000.0, 900.0, 8, sweep="2024-06-01_10-00-00")
    result = solve_table(dep8_dep48_table([newer]))

    # The newer c32 row (11000) replaces the older one (13000); c8 has 9000.
    assert result.prefill.best.tps_per_gpu == 11000.0
    assert result.rows_superseded == 1


def test_solve_prefill_over_slo_names_side() -> None:
    with pytest.raises(SolverError, match=r"no prefill level meets TTFT p90 <= 100 ms.*300\.0 ms"):
        solve_table(dep8_dep48_table(), slo_ttft_ms=100.0)


def test_solve_decode_over_slo_names_side() -> None:
    with pytest.raises(SolverError, match=r"no decode level meets ITL p90 <= 5 ms.*15\.0 ms"):
        solve_table(dep8_dep48_table(), slo_itl_ms=5.0)


def test_solve_all_invalid() -> None:
    table = pd.DataFrame([
        level_row("p8", "prefill", "c8", 9000.0, 300.0, 8, valid=False),
        level_row("d48", "decode", "c256", 6000.0, 15.0, 48),
    ])

    with pytest.raises(SolverError, match="none of the 1 prefill levels is valid"):
        solve_table(table)


def test_solve_no_decode_rows() -> None:
    table = pd.DataFrame([level_row("p8", "prefill", "c8", 9000.0, 300.0, 8)])

    with pytest.raises(SolverError, match="no decode rows"):
        solve_table(table)


def test_solve_several_isls_asks_for_one() -> None:
    table = dep8_dep48_table([level_row("p8k", "prefill", "c8", 15000.0, 800.0, 8, isl=8000)])

    expected = r"several ISLs \(1000, 8000\); pick one with workload.isl="
    with pytest.raises(SolverError, match=expected):
        solve_table(table)


def test_solve_isl_selects_rows() -> None:
    table = dep8_dep48_table([level_row("p8k", "prefill", "c8", 16000.0, 800.0, 8, isl=8000)])
    result = solve_table(table, isl=8000)

    # 16000 x 8 / 8000 = 16 requests/s per server.
    assert result.prefill.best.point_id == "p8k"
    assert result.prefill.best.requests_per_s == 16.0


def test_solve_unmeasured_isl() -> None:
    expected = r"no prefill row was measured at ISL 1024 \(measured: 1000\)"
    with pytest.raises(SolverError, match=expected):
        solve_table(dep8_dep48_table(), isl=1024)


def test_solve_budget_below_1p1d() -> None:
    with pytest.raises(SolverError, match="below the 56 GPUs of 1P1D"):
        solve_table(dep8_dep48_table(), gpu_budget=40)


def test_solve_invalid_percentile() -> None:
    with pytest.raises(ConfigError, match="bench.slo.percentile=75"):
        solve(dep8_dep48_table(), 1000.0, 50.0, percentile=75, isl=None, osl=None,
              gpu_budget=512, max_options=5)


def test_solve_missing_column() -> None:
    table = dep8_dep48_table().drop(columns=["itl_ms_p90"])

    with pytest.raises(SolverError, match="no column itl_ms_p90"):
        solve_table(table)


def test_render_solution_lists_ratio_and_options() -> None:
    output = io.StringIO()
    render_solution(solve_table(dep8_dep48_table()), Console(file=output, width=200))
    text = output.getvalue()

    assert "4.1538" in text
    assert "25P6D" in text
    assert "104.00" in text
    assert "432.00" in text
    assert "output tok/s per GPU (whole deployment)" in text


def test_solve_records_decode_context() -> None:
    # The decode rows of the DEP8/DEP48 table were measured at ISL 128, the prefill at 1000.
    result = solve_table(dep8_dep48_table())

    assert result.decode_measured_isl == 128
    assert result.isl == 1000
