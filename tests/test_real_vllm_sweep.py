"""The main job against a real engine: a 2-point sweep of vLLM (CPU build) on the tiny model."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from vllm_server import find_vllm_python, tiny_model_dir  # noqa: F401 (fixture)

pytestmark = [pytest.mark.engine, pytest.mark.slow]


@pytest.fixture(scope="module")
def vllm_sweep(tiny_model_dir: Path, tmp_path_factory) -> Path:  # noqa: F811
    results = tmp_path_factory.mktemp("vllm-results")
    python = find_vllm_python()
    command = f"engine.command=[{python},-m,vllm.entrypoints.openai.api_server]"
    sweep = subprocess.run(
        [sys.executable, "-m", "harness", "sweep", "+experiment=prefill_tiny",
         f"results_dir={results}", f"model.path={tiny_model_dir}", command,
         "bench.validity.max_loop_lag_ms=1000"],
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    return results


def test_vllm_points_done(vllm_sweep):
    statuses = [json.loads(path.read_text()) for path in vllm_sweep.glob("prefill_tiny/*/*/status.json")]

    assert len(statuses) == 2
    assert {status["state"] for status in statuses} == {"done"}


def test_vllm_levels_exact_lengths(vllm_sweep):
    for summary_path in vllm_sweep.glob("prefill_tiny/*/*/levels/*/summary.json"):
        summary = json.loads(summary_path.read_text())
        requests = pd.read_parquet(summary_path.parent / "requests.parquet")

        assert summary["completed"] == 12
        assert summary["failed"] == 0
        # ISL 1024 token ids and OSL 5 (isolated prefill), as vLLM's usage reports them.
        assert set(requests["usage_prompt_tokens"]) == {1024}
        assert set(requests["usage_completion_tokens"]) == {5}
        assert summary["isl_mismatch"] == 0
        assert summary["osl_mismatch"] == 0


def test_vllm_counters_match_client(vllm_sweep):
    for summary_path in vllm_sweep.glob("prefill_tiny/*/*/levels/*/summary.json"):
        summary = json.loads(summary_path.read_text())
        check = summary["server_token_check"]

        # 13 requests per level (1 warmup + 12 measured) of 1024 prompt and 5 output tokens.
        assert check["prompt_tokens_total"]["client"] == 13 * 1024
        assert check["generation_tokens_total"]["client"] == 13 * 5
        assert check["prompt_tokens_total"]["relative_gap"] <= 0.01
        assert check["generation_tokens_total"]["relative_gap"] <= 0.01


def test_vllm_metrics_sampled(vllm_sweep):
    frames = [pd.read_parquet(path) for path in vllm_sweep.glob("prefill_tiny/*/*/server_metrics.parquet")]

    assert len(frames) == 2
    for frame in frames:
        assert set(frame["name"]) >= {"vllm:num_requests_waiting", "vllm:prompt_tokens_total"}
