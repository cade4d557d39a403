"""`harness bench` end to end against a simulated engine process on 127.0.0.1."""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf
from rich.console import Console

from harness.cli import build_parser
from harness.errors import ConfigError, LaunchError
from harness.loadgen.command import bench_command

pytestmark = pytest.mark.slow

API_KEY = "sk-harness-test-7f3a9c"
KEY_VARIABLE = "HARNESS_BENCH_TEST_KEY"
START_LIMIT_S = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def sim_url():
    port = free_port()
    command = [sys.executable, "-m", "harness.sim.server", "--port", str(port), "--step-overhead-us", "500"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        give_up_s = time.monotonic() + START_LIMIT_S
        while True:
            assert process.poll() is None, "simulated engine exited during start-up"
            try:
                with urllib.request.urlopen(url + "/health", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < give_up_s, f"simulated engine not healthy after {START_LIMIT_S} s"
                time.sleep(0.05)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def bench_args(url: str, output_dir: Path, *extra: str) -> list[str]:
    # Other processes on a shared test machine can stall the client's event loop for
    # more than the default 20 ms. These tests check files, not the client's accuracy.
    return [
        f"endpoint.url={url}", "endpoint.model=tiny", "workload.isl=64", "workload.osl=8",
        "bench.concurrency=[2]", "bench.requests_per_level=6", "bench.warmup_requests=1",
        "bench.validity.max_loop_lag_ms=1000", f"endpoint.api_key_env={KEY_VARIABLE}",
        f"output_dir={output_dir}", *extra,
    ]


def run_bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, KEY_VARIABLE: API_KEY}
    return subprocess.run(
        [sys.executable, "-m", "harness", "bench", *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )


@pytest.fixture(scope="module")
def bench_run(sim_url, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("bench") / "tiny"
    result = run_bench(*bench_args(sim_url, output_dir))
    return output_dir, result


def quiet_console() -> Console:
    return Console(file=io.StringIO(), width=200)


def test_bench_exits_zero(bench_run):
    _, result = bench_run

    assert result.returncode == 0, result.stdout + result.stderr


def test_bench_prints_table(bench_run):
    output_dir, result = bench_run

    assert "collected levels" in result.stdout
    assert "c2" in result.stdout
    assert f"results: {output_dir}" in result.stdout


def test_bench_writes_config(bench_run):
    output_dir, _ = bench_run

    config = OmegaConf.load(output_dir / "config.yaml")

    assert config.endpoint.model == "tiny"
    assert config.endpoint.api_key_env == KEY_VARIABLE
    assert config.workload.isl == 64


def test_bench_writes_level(bench_run):
    output_dir, _ = bench_run
    level_dir = output_dir / "levels" / "c2"

    summary = json.loads((level_dir / "summary.json").read_text())
    requests = pd.read_parquet(level_dir / "requests.parquet")

    assert summary["completed"] == 6
    assert summary["failed"] == 0
    assert summary["valid"] is True
    # 6 measured requests and 1 warmup request, each with OSL 8 from usage.
    assert len(requests) == 7
    assert set(requests["usage_completion_tokens"]) == {8}


def test_bench_writes_summary_table(bench_run):
    output_dir, _ = bench_run

    table = pd.read_parquet(output_dir / "summary.parquet")

    assert list(table["level"]) == ["c2"]
    assert int(table.loc[0, "completed"]) == 6
    assert table.loc[0, "ttft_ms_p50"] > 0
    assert "ttft_ms" not in table.columns


def test_bench_writes_server_metrics(bench_run):
    output_dir, _ = bench_run

    metrics = pd.read_parquet(output_dir / "server_metrics.parquet")
    last = metrics.groupby("metric")["value"].last()
    first = metrics.groupby("metric")["value"].first()

    assert set(metrics["level"]) == {"c2"}
    assert set(metrics["worker"]) == {"endpoint"}
    assert set(last.index) == {
        "queue_depth", "running_requests", "kv_usage", "prompt_tokens_total", "generation_tokens_total",
        "busy_seconds_total",
    }
    # A fresh server: 7 requests of 8 output and 64 prompt tokens between the first and
    # last scrape, 7 x 8 = 56 and 7 x 64 = 448.
    assert first["generation_tokens_total"] == 0.0
    assert last["generation_tokens_total"] == 56.0
    assert last["prompt_tokens_total"] == 448.0


def test_bench_api_key_in_no_file(bench_run):
    output_dir, result = bench_run

    files = [path for path in output_dir.rglob("*") if path.is_file()]

    assert len(files) >= 5
    for path in files:
        assert API_KEY.encode() not in path.read_bytes(), path
    assert API_KEY not in result.stdout + result.stderr


def test_bench_rerun_skips_level(bench_run, sim_url):
    output_dir, _ = bench_run
    summary_path = output_dir / "levels" / "c2" / "summary.json"
    before = summary_path.read_bytes()

    result = run_bench(*bench_args(sim_url, output_dir))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "skip c2: already measured" in result.stdout
    assert summary_path.read_bytes() == before
    assert set(pd.read_parquet(output_dir / "server_metrics.parquet")["level"]) == {"c2"}


def test_bench_rejects_changed_config(bench_run, sim_url, monkeypatch):
    output_dir, _ = bench_run
    monkeypatch.setenv(KEY_VARIABLE, API_KEY)

    with pytest.raises(ConfigError, match=r"workload.isl: 64 -> 128"):
        bench_command(bench_args(sim_url, output_dir, "workload.isl=128"), force=False, console=quiet_console())


def test_bench_open_loop_level(sim_url, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, API_KEY)
    output_dir = tmp_path / "open"
    args = bench_args(sim_url, output_dir, "bench.request_rate=[50]", "bench.max_concurrency=2")

    assert bench_command(args, force=False, console=quiet_console()) == 0

    summary = json.loads((output_dir / "levels" / "r50_c2" / "summary.json").read_text())
    assert summary["completed"] == 6
    assert list(pd.read_parquet(output_dir / "summary.parquet")["level"]) == ["r50_c2"]


def test_bench_missing_url(tmp_path):
    args = ["endpoint.model=tiny", f"output_dir={tmp_path}"]

    with pytest.raises(ConfigError, match=r"endpoint.url is missing: .* e.g. endpoint.url=http://127.0.0.1:8000"):
        bench_command(args, force=False, console=quiet_console())


def test_bench_missing_keys_listed():
    with pytest.raises(ConfigError, match=r"endpoint.url is missing \(also missing: endpoint.model, output_dir\)"):
        bench_command(["workload.isl=64"], force=False, console=quiet_console())


def test_bench_missing_key_variable(sim_url, tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_VARIABLE, raising=False)

    with pytest.raises(ConfigError, match=f"{KEY_VARIABLE} .endpoint.api_key_env. is not set"):
        bench_command(bench_args(sim_url, tmp_path / "out"), force=False, console=quiet_console())
    assert not (tmp_path / "out").exists()


def test_bench_unreachable_server(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, API_KEY)
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(LaunchError, match=f"cannot reach the server at {url}/v1/models"):
        bench_command(bench_args(url, tmp_path / "out"), force=False, console=quiet_console())


def test_bench_unknown_model(sim_url, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, API_KEY)
    args = bench_args(sim_url, tmp_path / "out", "endpoint.model=llama")

    with pytest.raises(ConfigError, match="endpoint.model=llama is not served .*; it serves tiny"):
        bench_command(args, force=False, console=quiet_console())


def test_bench_help_lists_required_keys(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--help"])

    text = capsys.readouterr().out
    for key in ("endpoint.url=URL", "endpoint.model=NAME", "output_dir=DIR"):
        assert key in text
