"""Session fixture `slurm_cluster`: a local SLURM cluster started by scripts/slurm/start.sh.

tests/conftest.py imports the fixture so that every module shares it. Each pytest session
starts its own cluster, in its own folder and on its own ports, so that it neither uses
nor stops a cluster that a developer or another test session has running. The fixture
skips only when the cluster cannot be built here at all: when not root, or when neither
Slurm nor apt-get is present. Any other failure of start.sh fails the tests that use it,
and the failure message contains the script's output.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

logger = logging.getLogger(__name__)

SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts" / "slurm"
NODE_COUNT = 2
GPUS_PER_NODE = 8
# slurmctld, slurmdbd and one slurmd per node each listen on a port from the base up.
PORT_COUNT = 2 + NODE_COUNT
# Below Linux's default ephemeral range (32768-60999), where outgoing connections take ports.
PORT_SEARCH_START = 20000
PORT_SEARCH_END = 32000
# Shared by all test sessions, so that job ids never repeat from one session to the next.
JOB_ID_COUNTER_FILE = Path("/tmp/harness-slurm-pytest.next_job_id")
# start.sh runs apt-get update and install on a machine without the packages; pytest's
# own per-test timeout, when set, stops the wait earlier.
START_TIMEOUT_S = 900
STOP_TIMEOUT_S = 120


@dataclasses.dataclass(frozen=True)
class SlurmCluster:
    """Settings of the running local cluster, read from its cluster.env file."""

    state_dir: Path
    slurm_conf: Path
    cluster_name: str
    partition: str
    account: str
    node_names: tuple[str, ...]
    gpus_per_node: int

    @property
    def node_count(self) -> int:
        return len(self.node_names)


def read_cluster_file(state_dir: Path) -> SlurmCluster:
    """Parse the KEY=VALUE lines that start.sh writes to STATE_DIR/cluster.env."""
    settings: dict[str, str] = {}
    for line in (state_dir / "cluster.env").read_text().splitlines():
        key, _, value = line.partition("=")
        settings[key] = value
    return SlurmCluster(
        state_dir=state_dir,
        slurm_conf=Path(settings["SLURM_CONF"]),
        cluster_name=settings["CLUSTER_NAME"],
        partition=settings["PARTITION"],
        account=settings["ACCOUNT"],
        node_names=tuple(settings["NODE_NAMES"].split()),
        gpus_per_node=int(settings["GPUS_PER_NODE"]),
    )


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the local SLURM cluster needs root: scripts/slurm/start.sh runs its daemons as root"
    search_path = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"
    if shutil.which("slurmctld", path=search_path) is None and shutil.which("apt-get", path=search_path) is None:
        return "Slurm is not installed and apt-get is not available to install it"
    return None


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def find_free_port_base() -> int:
    """Return the first port of PORT_COUNT consecutive free loopback ports.

    The search starts at a point derived from the process id, so that two sessions that
    start at once rarely probe the same ports.
    """
    block_count = (PORT_SEARCH_END - PORT_SEARCH_START) // PORT_COUNT
    first_block = os.getpid() % block_count
    for offset in range(block_count):
        base = PORT_SEARCH_START + ((first_block + offset) % block_count) * PORT_COUNT
        if all(_port_is_free(port) for port in range(base, base + PORT_COUNT)):
            return base
    raise RuntimeError(
        f"no {PORT_COUNT} consecutive free ports on 127.0.0.1 between {PORT_SEARCH_START} "
        f"and {PORT_SEARCH_END}; stop the processes that hold them"
    )


def _run_script(
    name: str, args: list[str], env: dict[str, str], timeout_s: float
) -> subprocess.CompletedProcess[str]:
    command = ["bash", str(SCRIPTS_DIR / name), *args]
    logger.debug("running %s", command)
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout_s, check=False)
    logger.info("%s exited with %s:\n%s%s", name, result.returncode, result.stdout, result.stderr)
    return result


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """Start a local cluster for this session, set SLURM_CONF, and stop it at the end."""
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)

    # start.sh must create the folder itself, because stop.sh removes only folders that
    # carry start.sh's marker.
    state_dir = tmp_path_factory.getbasetemp() / "slurm-cluster"
    env = {
        **os.environ,
        "HARNESS_SLURM_DIR": str(state_dir),
        "HARNESS_SLURM_JOB_ID_FILE": str(JOB_ID_COUNTER_FILE),
    }
    port_base = find_free_port_base()
    start_args = ["--nodes", str(NODE_COUNT), "--gpus-per-node", str(GPUS_PER_NODE), "--port-base", str(port_base)]

    started = _run_script("start.sh", start_args, env, START_TIMEOUT_S)
    if started.returncode != 0:
        _run_script("stop.sh", [], env, STOP_TIMEOUT_S)
        pytest.fail(
            f"scripts/slurm/start.sh failed with exit code {started.returncode}:\n"
            f"{started.stdout}{started.stderr}"
        )

    cluster = read_cluster_file(state_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLURM_CONF", str(cluster.slurm_conf))
        yield cluster

    stopped = _run_script("stop.sh", [], env, STOP_TIMEOUT_S)
    if stopped.returncode != 0:
        pytest.fail(
            f"scripts/slurm/stop.sh failed with exit code {stopped.returncode}:\n"
            f"{stopped.stdout}{stopped.stderr}"
        )
