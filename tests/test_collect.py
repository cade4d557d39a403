"""Tests of the collector on hand-made results trees in tmp_path."""

import io
import json
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from rich.console import Console

from harness.config.schema import HarnessConfig, ModeName
from harness.errors import ResultsError
from harness.results.collect import collect, collect_command, load_table
from harness.solver import solve


def stats(p50: float, p90: float) -> dict:
    return {"mean": p50, "std": 1.0, "min": p50 / 2, "max": p90 * 2,
            "p50": p50, "p90": p90, "p95": p90, "p99": p90}


def summary(level: str, concurrency: int, input_tps_per_gpu: float, output_tps_per_gpu: float,
            ttft_p90_ms: float, itl_p90_ms: float, isl: int, osl: int, valid: bool = True,
            flags: list[str] | None = None) -> dict:
    return {
        "level": level,
        "concurrency": concurrency,
        "request_rate": None,
        "num_gpus": 8,
        "target_isl": isl,
        "target_osl": osl,
        "warmup_requests": 4,
        "mean_isl": float(isl),
        "mean_osl": float(osl),
        "started_wall_ns": 1_700_000_000_000_000_000,
        "completed": 64,
        "failed": 0,
        "error_rate": 0.0,
        "duration_s": 10.0,
        "request_throughput_rps": 6.4,
        "input_throughput_tps": input_tps_per_gpu * 8,
        "output_throughput_tps": output_tps_per_gpu * 8,
        "total_throughput_tps": (input_tps_per_gpu + output_tps_per_gpu) * 8,
        "request_throughput_rps_per_gpu": 0.8,
        "input_throughput_tps_per_gpu": input_tps_per_gpu,
        "output_throughput_tps_per_gpu": output_tps_per_gpu,
        "total_throughput_tps_per_gpu": input_tps_per_gpu + output_tps_per_gpu,
        "interactivity_tps_per_user": 50.0,
        "goodput_rps": 6.4,
        "ttft_ms": stats(ttft_p90_ms / 2, ttft_p90_ms),
        "tpot_ms": stats(itl_p90_ms / 2, itl_p90_ms),
        "itl_ms": stats(itl_p90_ms / 2, itl_p90_ms),
        "e2e_ms": stats(1000.0, 2000.0),
        "isl_mismatch": 0,
        "osl_mismatch": 0,
        "valid": valid,
        "flags": flags or [],
    }


def write_point(sweep_dir: Path, point_id: str, mode: str, dp: int, levels: dict[str, dict],
                state: str = "done", engine_args: dict | None = None) -> Path:
    """Write config.yaml, status.json and levels/<level>/summary.json as a job does."""
    config = OmegaConf.structured(HarnessConfig)
    config.mode.name = ModeName[mode]
    config.parallelism.dp = dp
    config.parallelism.ep = dp
    config.parallelism.dp_attention = dp > 1
    config.engine.args = engine_args or {}
    config.sweep = {"engine.args.chunked_prefill_size": [4096, 8192]}

    point_dir = sweep_dir / point_id
    point_dir.mkdir(parents=True)
    (point_dir / "config.yaml").write_text(OmegaConf.to_yaml(config))
    status = {"point_id": point_id, "state": state, "error": None, "levels_done": sorted(levels),
              "levels_total": len(levels), "job_id": "123", "log_paths": [], "updated_wall_s": 1.0}
    (point_dir / "status.json").write_text(json.dumps(status))
    for level, level_summary in levels.items():
        level_dir = point_dir / "levels" / level
        level_dir.mkdir(parents=True)
        (level_dir / "summary.json").write_text(json.dumps(level_summary))
    return point_dir


@pytest.fixture
def results_root(tmp_path: Path) -> Path:
    """Prefill point pa (levels c4, c16), pending point pb and decode point da (level c64)."""
    prefill_sweep = tmp_path / "prefill_dep8" / "2024-05-01_10-00-00"
    write_point(prefill_sweep, "pa", "prefill", 8, {
        "c16": summary("c16", 16, 13000.0, 1.0, 900.0, 5.0, isl=1000, osl=5),
        "c4": summary("c4", 4, 9000.0, 1.0, 400.0, 5.0, isl=1000, osl=5, valid=False,
                      flags=["error rate 0.2 > 0.01", "send lag"]),
    }, engine_args={"chunked_prefill_size": 8192})
    write_point(prefill_sweep, "pb", "prefill", 8, {}, state="pending",
                engine_args={"chunked_prefill_size": 4096})
    decode_sweep = tmp_path / "decode_dep48" / "2024-05-02_10-00-00"
    write_point(decode_sweep, "da", "decode", 1, {
        "c64": summary("c64", 64, 10.0, 9000.0, 100.0, 20.0, isl=128, osl=1000),
    })
    return tmp_path


def test_collect_one_row_per_level(results_root: Path) -> None:
    frame = collect([results_root])

    # pa has c4 and c16, pb has no level yet, da has c64.
    assert len(frame) == 3


def test_collect_sorts_by_concurrency(results_root: Path) -> None:
    frame = collect([results_root])

    # c4 sorts before c16 by concurrency (4 < 16), although "c16" < "c4" as text;
    # decode_dep48 sorts before prefill_dep8 by experiment.
    assert list(frame["level"]) == ["c64", "c4", "c16"]


def test_collect_path_columns(results_root: Path) -> None:
    row = collect([results_root]).iloc[0]

    assert row["experiment"] == "decode_dep48"
    assert row["sweep"] == "2024-05-02_10-00-00"
    assert row["point_id"] == "da"
    assert row["state"] == "done"
    point_dir = results_root / "decode_dep48" / "2024-05-02_10-00-00" / "da"
    assert row["point_dir"] == str(point_dir.resolve())


def test_collect_flattens_summary(results_root: Path) -> None:
    frame = collect([results_root]).set_index("level")

    # stats(450, 900): p50 = 900 / 2.
    assert frame.loc["c16", "ttft_ms_p50"] == 450.0
    assert frame.loc["c16", "ttft_ms_p90"] == 900.0
    assert frame.loc["c16", "input_throughput_tps_per_gpu"] == 13000.0
    assert frame.loc["c4", "flags"] == "error rate 0.2 > 0.01; send lag"
    assert frame.loc["c16", "flags"] == ""
    assert not frame.loc["c4", "valid"]


def test_collect_flattens_config(results_root: Path) -> None:
    frame = collect([results_root]).set_index("level")

    assert frame.loc["c16", "mode.name"] == "prefill"
    assert frame.loc["c16", "parallelism.dp"] == 8
    assert frame.loc["c16", "engine.args.chunked_prefill_size"] == 8192
    assert frame.loc["c16", "bench.concurrency"] == "[1, 4, 16]"
    assert not [column for column in frame.columns if column.startswith("sweep.")]


def test_collect_gpus_per_worker(results_root: Path) -> None:
    frame = collect([results_root]).set_index("level")

    # tp 1 x dp 8 x pp 1 = 8; the decode point has dp 1, so 1 x 1 x 1 = 1.
    assert frame.loc["c16", "gpus_per_worker"] == 8
    assert frame.loc["c64", "gpus_per_worker"] == 1


def test_collect_point_folder(results_root: Path) -> None:
    point_dir = results_root / "prefill_dep8" / "2024-05-01_10-00-00" / "pa"
    frame = collect([point_dir])

    assert list(frame["experiment"].unique()) == ["prefill_dep8"]
    assert list(frame["sweep"].unique()) == ["2024-05-01_10-00-00"]
    assert len(frame) == 2


def test_collect_overlapping_paths_once(results_root: Path) -> None:
    frame = collect([results_root, results_root / "prefill_dep8"])

    assert len(frame) == 3


def test_collect_keeps_every_sweep(results_root: Path) -> None:
    newer_sweep = results_root / "prefill_dep8" / "2024-06-01_10-00-00"
    write_point(newer_sweep, "pa", "prefill", 8, {
        "c16": summary("c16", 16, 14000.0, 1.0, 800.0, 5.0, isl=1000, osl=5),
    })
    frame = collect([results_root])

    assert len(frame[(frame["point_id"] == "pa") & (frame["level"] == "c16")]) == 2


def test_collect_null_stats_as_nan(tmp_path: Path) -> None:
    level_summary = summary("c1", 1, 100.0, 100.0, 10.0, 1.0, isl=16, osl=1)
    level_summary["tpot_ms"] = None
    write_point(tmp_path / "e" / "s", "p", "aggregated", 1, {"c1": level_summary})
    row = collect([tmp_path]).iloc[0]

    assert math.isnan(row["tpot_ms_p90"])


def test_collect_invalid_json_names_file(tmp_path: Path) -> None:
    point_dir = write_point(tmp_path / "e" / "s", "p", "prefill", 1, {
        "c1": summary("c1", 1, 100.0, 1.0, 10.0, 1.0, isl=16, osl=5),
    })
    bad_file = point_dir / "levels" / "c1" / "summary.json"
    bad_file.write_text('{"completed": 3,')

    with pytest.raises(ResultsError, match=str(bad_file)):
        collect([tmp_path])


def test_collect_summary_not_object(tmp_path: Path) -> None:
    point_dir = write_point(tmp_path / "e" / "s", "p", "prefill", 1, {"c1": {}})
    (point_dir / "levels" / "c1" / "summary.json").write_text("[1, 2]")

    with pytest.raises(ResultsError, match="expected an object"):
        collect([tmp_path])


def test_collect_no_points_names_folder(tmp_path: Path) -> None:
    empty = tmp_path / "nothing_here"
    empty.mkdir()

    with pytest.raises(ResultsError, match="nothing_here"):
        collect([empty])


def test_collect_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="not found"):
        collect([tmp_path / "absent"])


def test_collect_mixed_arg_types_to_parquet(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "e" / "s"
    level = {"c1": summary("c1", 1, 100.0, 1.0, 10.0, 1.0, isl=16, osl=5)}
    write_point(sweep_dir, "p1", "prefill", 1, level, engine_args={"cuda_graph": True})
    write_point(sweep_dir, "p2", "prefill", 1, level, engine_args={"cuda_graph": 256})
    output = tmp_path / "table.parquet"

    collect_command([tmp_path], output, Console(file=io.StringIO()))
    values = list(load_table([output])["engine.args.cuda_graph"])

    # true in one point and 256 in the other: both stored as JSON text.
    assert values == ["true", "256"]


def test_collect_command_default_output(results_root: Path) -> None:
    console_output = io.StringIO()
    status = collect_command([results_root], None, Console(file=console_output, width=250))

    output = results_root / "results.parquet"
    assert status == 0
    assert output.is_file()
    assert str(output) in console_output.getvalue().replace("\n", "")
    assert "13,000" in console_output.getvalue()


def test_load_table_parquet_and_folder(results_root: Path, tmp_path_factory) -> None:
    output = tmp_path_factory.mktemp("tables") / "prefill.parquet"
    collect_command([results_root / "prefill_dep8"], output, Console(file=io.StringIO()))
    frame = load_table([output, results_root / "decode_dep48"])

    # 2 prefill rows from the Parquet file and 1 decode row from the folder.
    assert len(frame) == 3


def test_load_table_rejects_other_file(tmp_path: Path) -> None:
    other = tmp_path / "table.csv"
    other.write_text("a,b\n")

    with pytest.raises(ResultsError, match="neither a .parquet table nor a folder"):
        load_table([other])


def test_collected_table_feeds_solve(results_root: Path) -> None:
    result = solve(collect([results_root]), slo_ttft_ms=1000.0, slo_itl_ms=50.0, percentile=90,
                   isl=None, osl=None, gpu_budget=64, max_options=3)

    # c4 is invalid, so c16 sets prefill: 13000 x 8 GPUs / ISL 1000 = 104 requests/s.
    # Decode: 9000 x 1 GPU / OSL 1000 = 9 requests/s.
    assert result.prefill.best.requests_per_s == 104.0
    assert result.decode.best.requests_per_s == 9.0
    assert result.prefill.levels_invalid == 1
