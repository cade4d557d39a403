"""Write a sweep's folders and submit its points with submitit, showing progress.

Locally, points run one after another, because two points measured at once would share
the CPU and distort each other's numbers. On SLURM every point is queued at once
(slurm_jobs.py).
"""

import logging
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import submitit
from omegaconf import OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import harness
from harness.config.schema import ExecutorKind
from harness.launch.job import PointJob
from harness.launch.job_records import JobRecord, write_job_records
from harness.launch.outcomes import PointOutcome, point_outcome, read_status_quietly
from harness.launch.plan import Point, SweepPlan
from harness.launch.slurm_jobs import submit_slurm, wait_slurm
from harness.loadgen.levels import level_names
from harness.results.io import write_text_atomic
from harness.results.layout import CONFIG_FILE, STATUS_FILE, SWEEP_FILE, PointPaths
from harness.results.status import PointState, PointStatus, read_status, write_status

logger = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.5


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
            status = read_status_quietly(PointPaths(sweep_dir / point.point_id))
            if status is None or status.state == PointState.pending:
                return
            progress.start_task(tasks[point.point_id])
            label = f"  {point.point_id} {status.state.value}"
            if status.state == PointState.running and status.current_level:
                label += f" {status.current_level}{_level_progress_text(status.level_progress)}"
            progress.update(tasks[point.point_id], completed=len(status.levels_done), description=label)

        if executor_kind == ExecutorKind.local:
            return _run_local(sweep_dir, points, refresh, lambda: progress.advance(overall))

        submissions = submit_slurm(sweep_dir, points)
        for submission in submissions:
            job_text = submission.job.job_id if submission.job is not None else "not submitted"
            progress.update(tasks[submission.point.point_id],
                            description=f"  {submission.point.point_id} pending (job {job_text})")
        try:
            return wait_slurm(sweep_dir, submissions, refresh, lambda: progress.advance(overall))
        except KeyboardInterrupt:
            console.print(
                f"the jobs keep running on SLURM: `python -m harness status {sweep_dir}` shows "
                f"them and `python -m harness cancel {sweep_dir}` stops them"
            )
            raise


def _run_local(
    sweep_dir: Path, points: list[Point], refresh: Callable[[Point], None], advance: Callable[[], None]
) -> list[PointOutcome]:
    outcomes = []
    records: dict[str, JobRecord] = {}
    for point in points:
        paths = PointPaths(sweep_dir / point.point_id)
        executor = submitit.LocalExecutor(folder=paths.logs / "submitit")
        executor.update_parameters(timeout_min=point.cfg.cluster.time_limit_min)
        job = executor.submit(PointJob(str(paths.root)))
        logger.info("started point %s as local job %s", point.point_id, job.job_id)
        records[point.point_id] = JobRecord(job_id=str(job.job_id), executor="local", log=str(job.paths.stderr))
        write_job_records(sweep_dir, records)
        while not job.done():
            refresh(point)
            time.sleep(POLL_INTERVAL_S)
        refresh(point)
        outcomes.append(point_outcome(sweep_dir, point, job))
        advance()
    return outcomes


def _level_progress_text(level_progress: dict | None) -> str:
    if not level_progress:
        return ""
    done, total = level_progress.get("done"), level_progress.get("total")
    failed = level_progress.get("failed") or 0
    text = f" {done}/{total} requests" if done is not None and total else ""
    return text + (f", {failed} failed" if failed else "")


def _git_revision() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parents[2],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None
