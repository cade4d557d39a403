"""End to end: a 1P1D sweep of the simulator behind its router, through submitit's local executor."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from harness.report.server_metrics import counter_deltas

pytestmark = pytest.mark.slow

ISL, OSL = 256, 16
REQUESTS, WARMUP = 12, 1
LEVELS = ("c2", "c4")
# The counters cover every request of a level, warmup included: 12 + 1 = 13.
LEVEL_REQUESTS = REQUESTS + WARMUP


@pytest.fixture(scope="module")
def point_dir(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    completed = subprocess.run(
        [
            sys.executable, "-m", "harness", "sweep", "mode=disagg", f"results_dir={results}",
            f"workload.isl={ISL}", f"workload.osl={OSL}", "bench.concurrency=[2,4]",
            f"bench.requests_per_level={REQUESTS}", f"bench.warmup_requests={WARMUP}",
            # The test checks files and counts, not the client's accuracy on a loaded machine.
            "bench.validity.max_loop_lag_ms=1000",
        ],
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (point,) = [path for path in results.glob("adhoc/*/*") if path.is_dir()]
    return point


def read_summary(point_dir, level: str) -> dict:
    return json.loads((point_dir / "levels" / level / "summary.json").read_text())


def test_disagg_point_done(point_dir):
    status = json.loads((point_dir / "status.json").read_text())

    assert status["state"] == "done"
    assert status["levels_done"] == list(LEVELS)
    for name in ("prefill-0", "decode-0", "router"):
        assert (point_dir / "logs" / f"{name}.log").is_file()


def test_disagg_levels_valid(point_dir):
    for level in LEVELS:
        summary = read_summary(point_dir, level)

        assert summary["completed"] == REQUESTS
        assert summary["failed"] == 0
        assert summary["valid"] is True, summary["flags"]
        # Disaggregated workers split the counts between roles, so no token cross-check runs.
        assert summary["server_token_check"] == {}


def test_disagg_per_gpu_counts_both_pools(point_dir):
    summary = read_summary(point_dir, "c4")

    # parallelism tp1: 1 prefill GPU + 1 decode GPU = 2.
    assert summary["request_throughput_rps_per_gpu"] == pytest.approx(summary["request_throughput_rps"] / 2)


def test_pools_token_totals(point_dir):
    for level in LEVELS:
        pools = read_summary(point_dir, level)["pools"]

        # Prefill workers count every prompt token: 13 x 256 = 3,328.
        assert pools["prefill_prompt_tokens"] == LEVEL_REQUESTS * ISL
        # The prefill worker generates each request's first token, so the decode worker
        # counts OSL - 1 per request: 13 x 15 = 195.
        assert pools["decode_generation_tokens"] == LEVEL_REQUESTS * (OSL - 1)
        assert pools["prefill_gpus"] == 1
        assert pools["decode_gpus"] == 1


def test_pools_requests_per_second(point_dir):
    for level in LEVELS:
        summary = read_summary(point_dir, level)
        pools = summary["pools"]

        assert pools["prefill_input_rps"] == pytest.approx(pools["prefill_input_tps"] / ISL)
        assert pools["decode_output_rps"] == pytest.approx(pools["decode_output_tps"] / OSL)
        assert pools["client_input_rps"] == pytest.approx(summary["input_throughput_tps"] / ISL)
        assert pools["client_output_rps"] == pytest.approx(summary["output_throughput_tps"] / OSL)
        assert pools["achieved_rps"] == summary["request_throughput_rps"]
        assert pools["prefill_capacity_rps"] > 0


def test_server_metrics_sample_router(point_dir):
    frame = pd.read_parquet(point_dir / "server_metrics.parquet")

    assert set(frame["worker"]) == {"prefill-0", "decode-0", "router"}
    for level in LEVELS:
        level_frame = frame[frame["level"] == level]
        (router,) = counter_deltas(level_frame, "generation_tokens_total", "router")
        # The router forwards all OSL tokens of each request: 13 x 16 = 208.
        assert router.delta == LEVEL_REQUESTS * OSL
        queue = level_frame[(level_frame["worker"] == "prefill-0") & (level_frame["metric"] == "queue_depth")]
        assert len(queue) >= 2
