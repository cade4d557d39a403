"""End to end: a 2-point sweep of the simulated engine through submitit's local executor."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

pytestmark = pytest.mark.slow

SUMMARY_KEYS = {
    "completed", "failed", "error_rate", "duration_s", "request_throughput_rps",
    "input_throughput_tps", "output_throughput_tps", "total_throughput_tps",
    "request_throughput_rps_per_gpu", "input_throughput_tps_per_gpu",
    "output_throughput_tps_per_gpu", "total_throughput_tps_per_gpu",
    "interactivity_tps_per_user", "goodput_rps", "ttft_ms", "tpot_ms", "itl_ms", "e2e_ms",
    "isl_mismatch", "osl_mismatch", "valid", "flags",
}
STATS_KEYS = {"mean", "std", "min", "max", "p50", "p90", "p95", "p99"}


def run_harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True, text=True, timeout=240, check=False,
    )


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    overrides = [
        "+experiment=prefill_dep8", f"results_dir={results}",
        "bench.concurrency=[1,4]", "bench.requests_per_level=12", "bench.warmup_requests=1",
        # The test checks files, not the client's accuracy: a loaded CI machine may lag.
        "bench.validity.max_loop_lag_ms=1000",
    ]
    first = run_harness("sweep", *overrides)
    return results, overrides, first


def test_sweep_exits_zero(sweep_run):
    _, _, first = sweep_run

    assert first.returncode == 0, first.stdout + first.stderr


def test_sweep_writes_every_file(sweep_run):
    results, _, _ = sweep_run

    sweep_dirs = list((results / "prefill_dep8").iterdir())
    assert len(sweep_dirs) == 1
    sweep_dir = sweep_dirs[0]
    assert (sweep_dir / "sweep.yaml").is_file()

    point_dirs = sorted(path for path in sweep_dir.iterdir() if path.is_dir())
    assert len(point_dirs) == 2
    for point_dir in point_dirs:
        status = json.loads((point_dir / "status.json").read_text())
        assert status["state"] == "done"
        assert status["levels_done"] == ["c1", "c4"]

        assert status["current_level"] is None

        config = OmegaConf.load(point_dir / "config.yaml")
        assert config.mode.name == "prefill"
        assert (point_dir / "logs" / "aggregated-0.log").is_file()

        for level in ("c1", "c4"):
            summary = json.loads((point_dir / "levels" / level / "summary.json").read_text())
            assert SUMMARY_KEYS <= set(summary)
            assert set(summary["ttft_ms"]) == STATS_KEYS
            assert summary["completed"] == 12
            assert summary["failed"] == 0
            assert summary["valid"] is True

            requests = pd.read_parquet(point_dir / "levels" / level / "requests.parquet")
            # 12 measured requests plus 1 warmup request, each with OSL 5 from usage.
            assert len(requests) == 13
            assert int(requests["warmup"].sum()) == 1
            assert set(requests["usage_completion_tokens"]) == {5}
            assert set(requests["usage_prompt_tokens"]) == {8192}

        # The sampler scrapes the simulator's /metrics at the start and end of each level.
        metrics = pd.read_parquet(point_dir / "server_metrics.parquet")
        assert set(metrics["level"]) == {"c1", "c4"}
        generation = metrics[(metrics["metric"] == "generation_tokens_total") & (metrics["level"] == "c4")]
        # Both levels ran 13 requests of 5 output tokens each: 65 by the end of c1, 130 by c4.
        assert generation["value"].max() == 130


def test_rerun_skips_measured_points(sweep_run):
    results, overrides, _ = sweep_run

    second = run_harness("sweep", *overrides)

    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count("skip ") == 2
    assert len(list((results / "prefill_dep8").iterdir())) == 1


def test_collect_builds_one_table(sweep_run, tmp_path):
    results, _, _ = sweep_run
    output = tmp_path / "table.parquet"

    collected = run_harness("collect", str(results), "--output", str(output))

    assert collected.returncode == 0, collected.stdout + collected.stderr
    table = pd.read_parquet(output)
    # 2 points x 2 levels.
    assert len(table) == 4
    assert sorted(table["level"].unique()) == ["c1", "c4"]
    assert sorted(table["engine.args.chunked_prefill_size"].unique()) == [4096, 8192]
    assert set(table["mode.name"]) == {"prefill"}
    assert (table["input_throughput_tps"] > 0).all()


def test_failed_point_reported_and_others_measured(tmp_path):
    # chunked_prefill_size=0 makes the simulator exit at start-up; 4096 is a valid point.
    sweep = run_harness(
        "sweep", "+experiment=prefill_dep8", f"results_dir={tmp_path}",
        "engine.args.chunked_prefill_size=0,4096",
        "bench.concurrency=[2]", "bench.requests_per_level=6", "bench.warmup_requests=0",
    )

    assert sweep.returncode == 1, sweep.stdout + sweep.stderr
    assert "exited with code 2 during start-up" in sweep.stdout
    assert "must be an integer >= 1, got '0'" in sweep.stdout

    statuses = {
        json.loads(path.read_text())["state"]
        for path in tmp_path.glob("prefill_dep8/*/*/status.json")
    }
    assert statuses == {"done", "failed"}


def test_error_message_keeps_brackets():
    result = run_harness("sweep", "mode.name=prefil")

    assert result.returncode == 2
    assert "expected one of [aggregated, prefill, decode, disagg]" in result.stdout
