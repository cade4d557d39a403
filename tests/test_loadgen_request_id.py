"""X-Request-Id: the server's id of each request is the level's prefix and its request_id."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from harness.loadgen.runner import LevelSpec, run_level


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def sim_with_token_log(tmp_path):
    port = free_port()
    token_log = tmp_path / "tokens.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "sim", "--port", str(port), "--token-log", str(token_log),
         "--step-overhead-us", "100"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(url + "/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        yield url, token_log
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_server_ids_follow_records(sim_with_token_log):
    url, token_log = sim_with_token_log
    spec = LevelSpec(
        base_url=url, model="tiny", endpoint="completions", isl=16, osl=4, concurrency=2,
        num_requests=6, warmup_requests=1, timeout_s=30, vocab_size=1000, seed=7, num_gpus=1,
        slo_ttft_ms=None, slo_itl_ms=None, slo_percentile=90, client_processes=1,
    )

    result = run_level(spec)
    time.sleep(0.5)  # the simulator appends a request's line when the request finishes

    logged = {json.loads(line)["request_id"] for line in token_log.read_text().splitlines()}
    # Level c2 of seed 7: harness-7-c2-<request_id> for the warmup request 0 and requests
    # 1-6, behind the cmpl- prefix that the simulator, like vLLM, puts on completion ids.
    assert logged == {f"cmpl-harness-7-c2-{record.request_id}" for record in result.records}
    assert len(logged) == 7
