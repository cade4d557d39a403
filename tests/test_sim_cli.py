"""The simulated engine and its router as processes: flags, token log, clean stop on SIGTERM."""

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from harness.sim.roles import Role
from harness.sim.router.cli import build_parser as build_router_parser
from harness.sim.router.pool import Policy
from harness.sim.server import build_parser
from harness.sim.server import main as server_main

START_LIMIT_S = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(process: subprocess.Popen, url: str) -> None:
    give_up_s = time.monotonic() + START_LIMIT_S
    while time.monotonic() < give_up_s:
        assert process.poll() is None, "server exited during start-up"
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    pytest.fail(f"server at {url} did not become healthy within {START_LIMIT_S} s")


def post_json(url: str, payload: dict) -> bytes:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def test_parser_defaults_from_profile():
    args = build_parser().parse_args([])
    assert (args.host, args.port, args.model_name) == ("127.0.0.1", 8000, "tiny")
    assert args.step_overhead_us == 2000.0
    assert args.decode_us_per_seq == 20.0
    assert args.kv_capacity_tokens == 1_000_000


def test_parser_rejects_negative_cost(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--prefill-us-per-token", "-1"])
    assert "must be a number >= 0" in capsys.readouterr().err


def test_process_token_log_and_sigterm(tmp_path):
    port = free_port()
    log_path = tmp_path / "tokens.jsonl"
    command = [
        sys.executable, "-m", "harness.sim.server", "--port", str(port), "--model-name", "sim-a",
        "--step-overhead-us", "500", "--token-log", str(log_path),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(process, url)
        payload = {"model": "sim-a", "prompt": [7] * 12, "max_tokens": 5, "stream": True}
        body = post_json(url + "/v1/completions", payload)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0
    assert body.endswith(b"data: [DONE]\n\n")
    assert f"listening on http://127.0.0.1:{port}" in stderr
    assert "Received SIGTERM, stopping" in stderr
    (entry,) = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert entry["prompt_tokens"] == 12
    assert len(entry["emit_perf_ns"]) == 5
    assert entry["request_id"].startswith("cmpl-")
    assert entry["request_id"] in body.decode()


def test_process_port_in_use_exits_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "harness.sim.server", "--port", str(port)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)

    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_process_sigint_exits_0():
    port = free_port()
    command = [sys.executable, "-m", "harness.sim.server", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy(process, f"http://127.0.0.1:{port}")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0
    assert "Simulated engine stopped after 0 requests" in stderr


def test_parser_role_flag(capsys):
    assert build_parser().parse_args(["--role", "decode"]).role is Role.DECODE
    assert build_parser().parse_args([]).role is Role.AGGREGATED
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--role", "mixed"])
    assert "--role" in capsys.readouterr().err


def test_router_parser_requires_workers(capsys):
    with pytest.raises(SystemExit):
        build_router_parser().parse_args(["--decode", "http://127.0.0.1:1"])
    assert "--prefill" in capsys.readouterr().err


def test_router_parser_rejects_bad_url(capsys):
    with pytest.raises(SystemExit):
        build_router_parser().parse_args(["--prefill", "127.0.0.1:8001", "--decode", "http://h:1"])
    assert "must be a worker's base URL" in capsys.readouterr().err


def test_router_parser_values():
    args = build_router_parser().parse_args([
        "--prefill", "http://127.0.0.1:8001/", "http://127.0.0.1:8002", "--decode",
        "http://127.0.0.1:8003", "--policy", "least_loaded", "--kv-bytes-per-token", "70000",
        "--kv-bandwidth-gbps", "25", "--kv-latency-us", "30",
    ])
    assert args.prefill == ["http://127.0.0.1:8001", "http://127.0.0.1:8002"]
    assert args.policy is Policy.LEAST_LOADED
    assert args.kv_bytes_per_token == 70000
    assert args.kv_bandwidth_gbps == 25.0
    assert args.kv_latency_us == 30.0


def test_main_dispatches_router(capsys):
    with pytest.raises(SystemExit) as exit_info:
        server_main(["router", "--help"])
    assert exit_info.value.code == 0
    assert "usage: harness sim router" in capsys.readouterr().out


def start_process(arguments: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "harness", "sim", *arguments]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_process_router_1p1d(tmp_path):
    prefill_port, decode_port, router_port = free_port(), free_port(), free_port()
    log_path = tmp_path / "router.jsonl"
    processes = [
        start_process(["--role", "prefill", "--port", str(prefill_port)]),
        start_process(["--role", "decode", "--port", str(decode_port)]),
        start_process([
            "router", "--port", str(router_port), "--prefill", f"http://127.0.0.1:{prefill_port}",
            "--decode", f"http://127.0.0.1:{decode_port}", "--kv-latency-us", "100",
            "--token-log", str(log_path),
        ]),
    ]
    url = f"http://127.0.0.1:{router_port}"
    try:
        # The router's /health returns 200 only once both workers do too.
        wait_healthy(processes[2], url)
        payload = {"model": "tiny", "prompt": [7] * 12, "max_tokens": 4, "stream": True}
        body = post_json(url + "/v1/completions", payload)
        for process in processes:
            process.send_signal(signal.SIGTERM)
        router_stderr = processes[2].communicate(timeout=15)[1]
        for process in processes[:2]:
            process.communicate(timeout=15)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    assert [process.returncode for process in processes] == [0, 0, 0]
    assert body.count(b'"text":" tok"') == 4
    assert body.endswith(b"data: [DONE]\n\n")
    assert "stopped after 1 requests (1 succeeded, 0 failed)" in router_stderr
    (entry,) = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert entry["prompt_tokens"] == 12
    assert len(entry["emit_perf_ns"]) == 4
    # 12 tokens * 0 bytes + 100 us = 100_000 ns
    assert entry["kv_transfer_ns"] == 100_000
