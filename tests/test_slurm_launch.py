"""harness on the local SLURM cluster: sweeps as job arrays, job steps per node, failures,
cancellation, re-runs and requeues.

The sweeps of several tests start together in one module fixture, so that they share
the cluster's 2 nodes and the file runs in about the time of its slowest sweep.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import submitit

from slurm_cluster import SlurmCluster

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parent.parent
# Bounds on waits, so that a broken cluster fails a test instead of hanging it.
SWEEP_TIMEOUT_S = 240
STATE_WAIT_S = 120
# Tiny levels of the simulated engine: 64-token prompts, 4 output tokens, 6 requests.
TINY = [
    "workload.isl=64", "workload.osl=4", "bench.concurrency=[2]", "bench.requests_per_level=6",
    "bench.warmup_requests=0", "bench.validity.max_loop_lag_ms=1000",
]
TWO_POINTS = "engine.args.chunked_prefill_size=4096,8192"
# The point files that a sweep writes, locally and on SLURM alike.
POINT_FILES = {
    "config.yaml", "status.json", "server_metrics.parquet", "logs/aggregated-0.log", "logs/job.log",
    "levels/c2/requests.parquet", "levels/c2/summary.json",
}


@dataclass
class SweepRun:
    """A `harness sweep` running in the background, with its output in a file."""

    results: Path
    overrides: list[str]
    process: subprocess.Popen
    output_path: Path

    def finish(self) -> tuple[int, str]:
        """Wait for the sweep and return its exit code and output."""
        code = self.process.wait(timeout=SWEEP_TIMEOUT_S)
        return code, self.output_path.read_text()

    def sweep_dir(self) -> Path:
        """Return the sweep folder, once the sweep has created it."""
        deadline_s = time.monotonic() + STATE_WAIT_S
        while time.monotonic() < deadline_s:
            found = list(self.results.glob("*/*/jobs.json"))
            if found:
                return found[0].parent
            time.sleep(0.2)
        raise AssertionError(f"no sweep folder with jobs.json under {self.results}")


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=SWEEP_TIMEOUT_S, check=False)


def start_sweep(base: Path, name: str, overrides: list[str]) -> SweepRun:
    results = base / name
    results.mkdir()
    full = [*overrides, f"results_dir={results}"]
    output_path = base / f"{name}.out"
    with open(output_path, "w") as output:
        process = subprocess.Popen([sys.executable, "-m", "harness", "sweep", *full], stdout=output,
                                   stderr=subprocess.STDOUT, cwd=REPO)
    return SweepRun(results=results, overrides=full, process=process, output_path=output_path)


def point_files(point_dir: Path) -> set[str]:
    """Return the files of a point folder, without submitit's own folder of a local run."""
    files = {str(path.relative_to(point_dir)) for path in point_dir.rglob("*") if path.is_file()}
    return {name for name in files if not name.startswith("logs/submitit/")}


def read_status(sweep_dir: Path) -> dict[str, dict]:
    return {path.parent.name: json.loads(path.read_text()) for path in sweep_dir.glob("*/status.json")}


def sacct_states(job_ids: list[str]) -> list[str]:
    result = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "State", "-j", ",".join(job_ids)],
                            capture_output=True, text=True, timeout=60, check=False)
    return sorted(result.stdout.split("\n")[:-1])


def wait_for_status(sweep_dir: Path, condition) -> bool:
    """Poll the sweep's only status.json until condition(status) holds; return whether it did."""
    deadline_s = time.monotonic() + STATE_WAIT_S
    while time.monotonic() < deadline_s:
        statuses = list(read_status(sweep_dir).values())
        if statuses and condition(statuses[0]):
            return True
        time.sleep(0.1)
    return False


def wait_for_queue_state(job_id: str, state: str) -> bool:
    deadline_s = time.monotonic() + STATE_WAIT_S
    while time.monotonic() < deadline_s:
        result = subprocess.run(["squeue", "-h", "-o", "%T", "-j", job_id], capture_output=True, text=True, timeout=60)
        if result.stdout.strip() == state:
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def sweeps(slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, SweepRun]:
    base = tmp_path_factory.mktemp("slurm-sweeps")
    slurm = ["cluster=slurm", f"cluster.partition={slurm_cluster.partition}"]
    runs = {
        # Workers of 4 GPUs, so that both points of the array share a node's 8 fake GPUs.
        "measured": start_sweep(base, "measured", [*slurm, *TINY, TWO_POINTS, "parallelism.tp=4"]),
        "local": start_sweep(base, "local", [*TINY, TWO_POINTS, "parallelism.tp=4"]),
        # chunked_prefill_size=0 makes the simulator exit at start-up.
        "failing": start_sweep(base, "failing", [*slurm, *TINY, "engine.args.chunked_prefill_size=0,4096"]),
        # 400 output tokens in steps of 100 ms: the level runs for minutes while the simulator idles.
        "cancelled": start_sweep(base, "cancelled", [
            *slurm, *TINY, TWO_POINTS, "workload.osl=400", "engine.sim.step_overhead_us=100000",
        ]),
    }
    yield runs
    for run in runs.values():
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


def test_sweep_completes_as_array(sweeps: dict[str, SweepRun]) -> None:
    code, output = sweeps["measured"].finish()

    assert code == 0, output
    sweep_dir = sweeps["measured"].sweep_dir()
    jobs = json.loads((sweep_dir / "jobs.json").read_text())
    # One job array of 2 tasks: both ids share the array's id.
    assert sorted(record["job_id"].split("_")[1] for record in jobs.values()) == ["0", "1"]
    assert len({record["job_id"].split("_")[0] for record in jobs.values()}) == 1
    assert {status["state"] for status in read_status(sweep_dir).values()} == {"done"}


def test_sweep_layout_matches_local(sweeps: dict[str, SweepRun]) -> None:
    slurm_code, slurm_output = sweeps["measured"].finish()
    local_code, local_output = sweeps["local"].finish()
    assert slurm_code == 0, slurm_output
    assert local_code == 0, local_output

    slurm_points = sorted(path for path in sweeps["measured"].sweep_dir().iterdir() if (path / "config.yaml").exists())
    local_points = sorted(path for path in sweeps["local"].sweep_dir().iterdir() if (path / "config.yaml").exists())

    # The same point ids, because the cluster is not part of a point's id.
    assert [path.name for path in slurm_points] == [path.name for path in local_points]
    for slurm_point, local_point in zip(slurm_points, local_points):
        assert point_files(slurm_point) == POINT_FILES
        assert point_files(local_point) == POINT_FILES


def test_worker_gets_gpu_slice(sweeps: dict[str, SweepRun]) -> None:
    code, output = sweeps["measured"].finish()
    assert code == 0, output

    for log in sweeps["measured"].sweep_dir().glob("*/logs/aggregated-0.log"):
        line = next(line for line in log.read_text().splitlines() if "CUDA_VISIBLE_DEVICES=" in line)
        # tp=4: four of the node's eight fake GPUs.
        assert len(line.split("CUDA_VISIBLE_DEVICES=")[1].split(",")) == 4


def test_failed_point_reports_log_tail(sweeps: dict[str, SweepRun]) -> None:
    code, output = sweeps["failing"].finish()

    assert code == 1, output
    assert "exited with code 2 during start-up" in output
    assert "must be an integer >= 1, got '0'" in output
    states = sorted(status["state"] for status in read_status(sweeps["failing"].sweep_dir()).values())
    assert states == ["done", "failed"]


def test_cancel_ends_running_jobs(sweeps: dict[str, SweepRun]) -> None:
    run = sweeps["cancelled"]
    sweep_dir = run.sweep_dir()
    deadline_s = time.monotonic() + STATE_WAIT_S
    while time.monotonic() < deadline_s and run.process.poll() is None:
        states = [status["state"] for status in read_status(sweep_dir).values()]
        if states.count("running") == 2:
            break
        time.sleep(0.2)

    cancelled = harness("cancel", str(sweep_dir))
    status_output = harness("status", str(sweep_dir))
    code, output = run.finish()

    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    job_ids = [record["job_id"] for record in json.loads((sweep_dir / "jobs.json").read_text()).values()]
    assert sacct_states(job_ids) == ["CANCELLED by 0", "CANCELLED by 0"]
    assert [status["state"] for status in read_status(sweep_dir).values()] == ["cancelled", "cancelled"]
    assert status_output.stdout.count("cancelled") >= 2
    assert "2 cancelled" in status_output.stdout
    assert code == 1, output


def test_rerun_skips_measured_points(sweeps: dict[str, SweepRun]) -> None:
    run = sweeps["measured"]
    code, output = run.finish()
    assert code == 0, output

    second = harness("sweep", *run.overrides)

    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count("skip ") == 2
    assert len(list(run.results.glob("*/*/sweep.yaml"))) == 1


def test_impossible_request_fails_at_submit(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    # 16 GPUs on one node of a cluster whose nodes have 8.
    result = harness("sweep", "cluster=slurm", f"cluster.partition={slurm_cluster.partition}",
                     "cluster.gpus_per_node=16", "parallelism.tp=16", *TINY, f"results_dir={tmp_path}")

    assert result.returncode == 1
    assert "sbatch rejected the job" in result.stdout
    assert "Requested node configuration is not available" in result.stdout


def test_two_workers_on_two_nodes(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    from harness.launch.allocation import slurm_parameters
    from harness.launch.plan import plan_sweep
    from harness.launch.topology import Role, Topology, Worker

    # Two workers of 8 GPUs, each a whole node, as a 1P1D point would place them.
    point = plan_sweep(["cluster=slurm", f"cluster.partition={slurm_cluster.partition}", "parallelism.tp=8"]).points[0]
    topology = Topology(workers=(Worker(Role.prefill, 0, 8), Worker(Role.decode, 0, 8)), gpus_per_node=8)
    executor = submitit.SlurmExecutor(folder=tmp_path / "submitit" / "%j")
    executor.update_parameters(**slurm_parameters(point.cfg.cluster, topology, job_name="harness-two-nodes"))

    # A local function, so that cloudpickle sends it by value to the job.
    def start_both(cfg, topology, logs_dir: Path) -> list[str]:
        from harness.launch.deploy import FreePortAllocator, plan_launch, start_launch
        from harness.launch.nodes import allocation_nodes
        from harness.launch.processes import stop_processes

        nodes = allocation_nodes(topology.num_nodes)
        launch = plan_launch(cfg, topology, nodes, FreePortAllocator(nodes.head_address), files_dir=logs_dir)
        processes = []
        try:
            start_launch(launch, logs_dir, timeout_s=60, poll_interval_s=0.2, processes=processes)
        finally:
            stop_processes(processes)
        return [process.name for process in processes]

    job = executor.submit(start_both, point.cfg, topology, tmp_path / "logs")
    names = job.task(0).result()

    assert names == ["prefill-0", "decode-0"]
    starts = {
        name: next(line for line in (tmp_path / "logs" / f"{name}.log").read_text().splitlines() if "starting on" in line)
        for name in names
    }
    assert starts == {
        "prefill-0": "prefill-0: starting on node1 with CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7",
        "decode-0": "decode-0: starting on node2 with CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7",
    }


def test_requeue_resumes_unmeasured_level(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    # Two levels, c2 then c1, of 12 output tokens in steps of 50 ms: c1 runs for about
    # 6 requests x 12 tokens x 50 ms = 3.6 s, time enough to requeue the job during it.
    run = start_sweep(tmp_path, "requeued", [
        "cluster=slurm", f"cluster.partition={slurm_cluster.partition}", *TINY,
        "bench.concurrency=[2,1]", "workload.osl=12", "engine.sim.step_overhead_us=50000",
    ])
    sweep_dir = run.sweep_dir()
    job_id = next(iter(json.loads((sweep_dir / "jobs.json").read_text()).values()))["job_id"]
    assert wait_for_status(sweep_dir, lambda status: status["current_level"] == "c1")

    # SLURM sends SIGUSR2 before the time limit (submitit's --signal), and submitit
    # handles it with checkpoint() and a requeue.
    signalled = subprocess.run(["scancel", "--signal=USR2", job_id], capture_output=True, text=True, timeout=60)
    assert signalled.returncode == 0, signalled.stderr
    assert wait_for_status(sweep_dir, lambda status: status["state"] == "pending")
    # Slurm 22.05 holds a requeued job for 2 minutes (its BeginTime), so release it now.
    assert wait_for_queue_state(job_id, "PENDING")
    released = subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"],
                              capture_output=True, text=True, timeout=60)
    assert released.returncode == 0, released.stderr
    code, output = run.finish()

    assert code == 0, output
    status = next(iter(read_status(sweep_dir).values()))
    assert status["state"] == "done"
    assert status["levels_done"] == ["c2", "c1"]
    job_log = next(sweep_dir.glob("*/logs/job.log")).read_text()
    assert "is being requeued" in job_log
    assert "level c2 already measured; skipping" in job_log
