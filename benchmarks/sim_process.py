"""Start the simulated engine on 127.0.0.1, pinned to its own CPUs, and stop it again."""

import logging
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from harness.errors import LaunchError

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0


@dataclass
class SimServer:
    process: subprocess.Popen
    port: int
    token_log_path: Path
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"{self.base_url}/metrics"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def start_sim(cpus: str, step_us: float, work_dir: Path) -> SimServer:
    """Start `harness sim` with a fixed step time and no per-token cost, and wait until it is healthy.

    Every running request gets one token per step, so the event rate is the number of
    running requests times the steps per second. Raises LaunchError when the server
    exits or /health does not return 200 within START_TIMEOUT_S.
    """
    port = free_port()
    token_log_path = work_dir / "token_log.jsonl"
    log_path = work_dir / "sim.log"
    argv = [
        "taskset", "-c", cpus,
        sys.executable, "-m", "harness", "sim",
        "--host", HOST,
        "--port", str(port),
        "--step-overhead-us", str(step_us),
        "--prefill-us-per-token", "0",
        "--decode-us-per-seq", "0",
        "--context-us-per-token", "0",
        # High enough that neither the batch size nor the KV cache ever queues a request.
        "--max-running-requests", "65536",
        "--kv-capacity-tokens", "100000000",
        "--context-length", "1000000",
        "--token-log", str(token_log_path),
        "--log-level", "WARNING",
    ]
    logger.debug("starting the simulator: %s", argv)
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    server = SimServer(process=process, port=port, token_log_path=token_log_path, log_path=log_path)

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LaunchError(
                f"the simulator exited with code {process.returncode} during start-up; see {log_path}"
            )
        try:
            with urllib.request.urlopen(f"{server.base_url}/health", timeout=1.0) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    stop_sim(server)
    raise LaunchError(f"the simulator's /health did not return 200 within {START_TIMEOUT_S} s; see {log_path}")


def stop_sim(server: SimServer) -> None:
    """Send SIGTERM to the simulator, and SIGKILL when it has not exited after STOP_GRACE_S."""
    process = server.process
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        logger.warning("simulator pid %d ignored SIGTERM for %s s, killing it", process.pid, STOP_GRACE_S)
        process.kill()
        process.wait()
