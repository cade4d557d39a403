"""Write a sweep's folders and submit its points with submitit, showing progress.

Locally, points run one after another, because two points measured at once would share
the CPU and distort each other's numbers. On SLURM every point is queued at once.
"""

import logging
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import submitit
from omegaconf import OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import harness
from harness.config.schema import ExecutorKind
from harness.launch.job import run_point
from harness.launch.plan import Point, SweepPlan
from harness.loadgen.levels import level_names
from harness.results.io import write_text_atomic
from harness.results.layout import CONFIG_FILE, STATUS_FILE, SWEEP_FILE, PointPaths
from harness.results.status import PointState, PointStatus, read_status, write_status

logger = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.5


@dataclass(frozen=True)
class PointOutcome:
    point: Point
    state: str
    point_dir: Path | None
    error: str | None = None


def find_measured(results_dir: Path, experiment: str, point_id: str) -> Path | None:
    """Return the newest folder where this point finished, or None."""
    for status_path in sorted(results_dir.glob(f"{experiment}/*/{point_id}/{STATUS_FILE}"), reverse=True):
        try:
            if read_status(status_path).state == PointState.done:
                return status_path.parent
        except Exception as error:  # an unreadable status never blocks a new measurement
            logger.warning("ignoring %s: %s", status_path, error)
    return None


def new_sweep_dir(results_dir: Path, experiment: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = results_dir / experiment / stamp
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = results_dir / experiment / f"{stamp}-{suffix}"
    candidate.mkdir(parents=True)
    return candidate


def write_sweep_files(sweep_dir: Path, plan: SweepPlan, points: list[Point]) -> None:
    """Write sweep.yaml and each point's resolved config.yaml and pending status.json."""
    sweep_record = {
        "experiment": plan.experiment,
        "overrides": list(plan.overrides),
        "axes": plan.axes,
        "points": [{"id": point.point_id, "overrides": list(point.overrides)} for point in points],
        "harness_version": harness.__version__,
        "git_revision": _git_revision(),
        "created": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    write_text_atomic(sweep_dir / SWEEP_FILE, OmegaConf.to_yaml(OmegaConf.create(sweep_record)))
    for point in points:
        paths = PointPaths(sweep_dir / point.point_id)
        write_text_atomic(paths.root / CONFIG_FILE, OmegaConf.to_yaml(point.cfg, resolve=True))
        write_status(paths.status, PointStatus(point_id=point.point_id,
                                               levels_total=len(level_names(point.cfg))))


def run_points(sweep_dir: Path, points: list[Point], console: Console) -> list[PointOutcome]:
    """Submit every point and wait for all of them; a failed point never stops the others."""
    if not points:
        return []
    executor_kind = points[0].cfg.cluster.executor
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        overall = progress.add_task("points", total=len(points))
        tasks = {
            point.point_id: progress.add_task(
                f"  {point.point_id} pending", total=len(level_names(point.cfg)), start=False
            )
            for point in points
        }

        def refresh(point: Point) -> None:
            status = _read_status_quietly(PointPaths(sweep_dir / point.point_id))
            if status is None or status.state == PointState.pending:
                return
            progress.start_task(tasks[point.point_id])
            label = f"  {point.point_id} {status.state.value}"
            if status.state == PointState.running and status.current_level:
                label += f" {status.current_level}{_level_progress_text(status.level_progress)}"
            progress.update(tasks[point.point_id], completed=len(status.levels_done), description=label)

        if executor_kind == ExecutorKind.local:
            outcomes = []
            for point in points:
                job = _submit(sweep_dir, point)
                while not job.done():
                    refresh(point)
                    time.sleep(POLL_INTERVAL_S)
                refresh(point)
                outcomes.append(_outcome(sweep_dir, point, job))
                progress.advance(overall)
            return outcomes

        jobs = [(point, _submit(sweep_dir, point)) for point in points]
        finished: dict[str, PointOutcome] = {}
        while len(finished) < len(jobs):
            for point, job in jobs:
                refresh(point)
                if point.point_id not in finished and job.done():
                    finished[point.point_id] = _outcome(sweep_dir, point, job)
                    progress.advance(overall)
            time.sleep(POLL_INTERVAL_S)
        return [finished[point.point_id] for point, _ in jobs]


def _submit(sweep_dir: Path, point: Point) -> submitit.Job:
    paths = PointPaths(sweep_dir / point.point_id)
    cluster = point.cfg.cluster
    if cluster.executor == ExecutorKind.local:
        executor = submitit.LocalExecutor(folder=paths.logs / "submitit")
        executor.update_parameters(timeout_min=cluster.time_limit_min)
    else:
        # NOTE: the job runs every worker on the allocation's first node; job steps with
        # srun per worker (multi-node points) are not implemented yet.
        executor = submitit.SlurmExecutor(folder=paths.logs / "submitit" / "%j")
        executor.update_parameters(**slurm_parameters(point))
    job = executor.submit(run_point, str(paths.root))
    logger.info("submitted point %s as job %s", point.point_id, job.job_id)
    return job


def slurm_parameters(point: Point) -> dict:
    """submitit SlurmExecutor parameters sized from the point's topology."""
    cluster = point.cfg.cluster
    topology = point.topology
    parameters = {
        "job_name": f"harness-{point.point_id}",
        "time": cluster.time_limit_min,
        "nodes": topology.num_nodes,
        "ntasks_per_node": 1,
        "gpus_per_node": min(topology.num_gpus, cluster.gpus_per_node),
        "additional_parameters": dict(OmegaConf.to_container(cluster.sbatch_extra)),
    }
    optional = {"partition": cluster.partition, "account": cluster.account, "qos": cluster.qos,
                "cpus_per_task": cluster.cpus_per_task,
                "mem": f"{cluster.mem_gb}GB" if cluster.mem_gb is not None else None}
    parameters.update({key: value for key, value in optional.items() if value is not None})
    return parameters


def _outcome(sweep_dir: Path, point: Point, job: submitit.Job) -> PointOutcome:
    point_dir = sweep_dir / point.point_id
    try:
        state = job.result()
        return PointOutcome(point=point, state=state, point_dir=point_dir)
    except Exception as error:  # submitit raises FailedJobError with the remote traceback
        status = _read_status_quietly(PointPaths(point_dir))
        message = status.error if status is not None and status.error else _first_line(error)
        logs = f"; job log in {job.paths.stderr}" if hasattr(job, "paths") else ""
        logger.error("point %s (job %s) failed: %s%s", point.point_id, job.job_id, message, logs)
        return PointOutcome(point=point, state=PointState.failed.value, point_dir=point_dir,
                            error=f"{message}{logs}")


def _level_progress_text(level_progress: dict | None) -> str:
    if not level_progress:
        return ""
    done, total = level_progress.get("done"), level_progress.get("total")
    failed = level_progress.get("failed") or 0
    text = f" {done}/{total} requests" if done is not None and total else ""
    return text + (f", {failed} failed" if failed else "")


def _read_status_quietly(paths: PointPaths) -> PointStatus | None:
    try:
        return read_status(paths.status)
    except Exception:  # the job may be replacing the file right now
        return None


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _git_revision() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parents[2],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None
