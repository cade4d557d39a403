"""Jobs on the local SLURM cluster of scripts/slurm/start.sh: GPUs, nodes, accounting, submitit."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import submitit

from slurm_cluster import SlurmCluster

pytestmark = pytest.mark.slurm

# Bounds on polling loops, so that a broken cluster fails the test instead of hanging it.
# They are generous because a job normally ends within seconds, but on a loaded machine
# a job start has been seen to stall for tens of seconds.
COMMAND_TIMEOUT_S = 120
STATE_WAIT_S = 120
FINAL_STATES = ("COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL")


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)


def sbatch(*options: str) -> subprocess.CompletedProcess[str]:
    return run(["sbatch", "--parsable", *options])


def job_state(command: list[str]) -> str:
    result = run(command)
    lines = result.stdout.split()
    return lines[0] if lines else ""


def wait_for_sacct_state(job_id: str, states: tuple[str, ...]) -> str:
    """Poll sacct until the job's state starts with one of STATES; return the last state seen.

    The accounting record trails the job's end, because slurmctld sends it to slurmdbd
    asynchronously.
    """
    deadline_s = time.monotonic() + STATE_WAIT_S
    state = ""
    while time.monotonic() < deadline_s:
        state = job_state(["sacct", "-X", "-n", "-P", "-o", "State", "-j", job_id])
        if state.startswith(states):
            return state
        time.sleep(0.5)
    return state


def wait_for_squeue_state(job_id: str, states: tuple[str, ...]) -> str:
    """Poll squeue until the job's state is one of STATES or the job has left the queue.

    Returns the last state seen, "" once squeue no longer lists the job. This polls faster
    than `sbatch --wait`, whose interval grows to several seconds.
    """
    deadline_s = time.monotonic() + STATE_WAIT_S
    state = ""
    while time.monotonic() < deadline_s:
        state = job_state(["squeue", "-h", "-o", "%T", "-j", job_id])
        if state == "" or state in states:
            return state
        time.sleep(0.2)
    return state


def run_job(*options: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Submit a job and wait until it has ended; return the sbatch result and the final state."""
    submitted = sbatch(*options)
    if submitted.returncode != 0:
        return submitted, ""
    return submitted, wait_for_squeue_state(submitted.stdout.strip(), FINAL_STATES)


def test_gpu_job_sees_two_devices(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    output = tmp_path / "gpu.out"

    result, state = run_job("--gres=gpu:2", f"--output={output}", "--wrap", 'echo "$CUDA_VISIBLE_DEVICES"')

    assert result.returncode == 0, result.stderr
    assert state in ("", "COMPLETED")
    # On an idle node the job gets the first two of the 8 fake GPUs, indexes 0 and 1.
    assert output.read_text().strip() == "0,1"


def test_two_node_job_spans_nodes(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    output = tmp_path / "nodes.out"
    script = 'echo "nodelist $SLURM_JOB_NODELIST"; srun --ntasks-per-node=1 bash -c \'echo "task $SLURMD_NODENAME"\''

    result, state = run_job("--nodes=2", f"--output={output}", "--wrap", script)

    assert result.returncode == 0, result.stderr
    assert state in ("", "COMPLETED")
    lines = output.read_text().splitlines()
    assert lines[0] == "nodelist node[1-2]"
    assert sorted(lines[1:]) == ["task node1", "task node2"]


def test_sacct_reports_completed(slurm_cluster: SlurmCluster) -> None:
    result, _ = run_job("--output=/dev/null", "--wrap", "true")
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()

    assert wait_for_sacct_state(job_id, FINAL_STATES) == "COMPLETED"


def test_scancel_shows_cancelled(slurm_cluster: SlurmCluster) -> None:
    submitted = sbatch("--output=/dev/null", "--wrap", "sleep 300")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert wait_for_squeue_state(job_id, ("RUNNING",)) == "RUNNING"

    cancelled = run(["scancel", job_id])

    assert cancelled.returncode == 0, cancelled.stderr
    # sacct writes "CANCELLED by 0": 0 is the uid of root, who cancelled it.
    assert wait_for_sacct_state(job_id, FINAL_STATES).startswith("CANCELLED")


def test_impossible_gres_rejected(slurm_cluster: SlurmCluster) -> None:
    # Each node has 8 GPUs, so 9 on one node can never be allocated.
    result = sbatch("--gres=gpu:9", "--output=/dev/null", "--wrap", "true")

    assert result.returncode != 0
    assert "Requested node configuration is not available" in result.stderr


def test_submitit_returns_result(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    executor = submitit.SlurmExecutor(folder=tmp_path / "submitit")
    executor.update_parameters(
        partition=slurm_cluster.partition, nodes=1, gpus_per_node=1, time=5, ntasks_per_node=1
    )

    # A local function, so that cloudpickle sends its code by value and the job does not
    # need to import this test module.
    def describe_job(base: int) -> tuple[int, str, str]:
        import os

        return base * 2, os.environ["SLURM_JOB_ID"], os.environ["CUDA_VISIBLE_DEVICES"]

    job = executor.submit(describe_job, 21)
    doubled, job_id, visible_devices = job.result()

    assert doubled == 42
    assert job_id == job.job_id
    assert visible_devices == "0"
