"""The outcome of a point's job, from submitit's result and the point's own status.json."""

import logging
from dataclasses import dataclass
from pathlib import Path

import submitit

from harness.launch.plan import Point
from harness.results.layout import PointPaths
from harness.results.status import PointState, PointStatus, read_status

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PointOutcome:
    point: Point
    state: str
    point_dir: Path | None
    error: str | None = None


def cancelled_outcome(sweep_dir: Path, point: Point, status: PointStatus) -> PointOutcome:
    logger.warning("point %s was cancelled", point.point_id)
    return PointOutcome(point=point, state=PointState.cancelled.value, point_dir=sweep_dir / point.point_id,
                        error=status.error)


def point_outcome(sweep_dir: Path, point: Point, job: submitit.Job) -> PointOutcome:
    """Return the outcome of a point whose job has ended, with the error and job log of a failure."""
    point_dir = sweep_dir / point.point_id
    # A multi-node job has a task per node, but only task 0 runs the point (see allocation.py).
    first_task = job.task(0) if job.num_tasks > 1 else job
    status = read_status_quietly(PointPaths(point_dir))
    logs = f"; job log in {job.paths.stderr}"
    # A job stopped by a signal writes no result, and submitit's result() would wait 15 s
    # for one. The point's own status.json already records what happened.
    stopped = status is not None and status.state in (PointState.failed, PointState.cancelled)
    if stopped and not first_task.paths.result_pickle.exists():
        return _failed_outcome(point, point_dir, job, status.state, f"{status.error}{logs}")
    try:
        state = first_task.result()
        return PointOutcome(point=point, state=state, point_dir=point_dir)
    except Exception as error:  # submitit raises FailedJobError with the remote traceback
        message = status.error if status is not None and status.error else last_line(error)
        cancelled = status is not None and status.state == PointState.cancelled
        state = PointState.cancelled if cancelled else PointState.failed
        return _failed_outcome(point, point_dir, job, state, f"{message}{logs}")


def _failed_outcome(point: Point, point_dir: Path, job: submitit.Job, state: PointState, error: str) -> PointOutcome:
    if state != PointState.cancelled and _slurm_cancelled(job):
        state = PointState.cancelled
    if state == PointState.cancelled:
        logger.warning("point %s (job %s) was cancelled", point.point_id, job.job_id)
    else:
        logger.error("point %s (job %s) failed: %s", point.point_id, job.job_id, error)
    return PointOutcome(point=point, state=state.value, point_dir=point_dir, error=error)


def _slurm_cancelled(job: submitit.Job) -> bool:
    if not isinstance(job, submitit.SlurmJob):
        return False
    return job.state.startswith("CANCELLED")


def read_status_quietly(paths: PointPaths) -> PointStatus | None:
    """Return the point's status, or None while it is missing or unreadable."""
    try:
        return read_status(paths.status)
    except Exception:  # the job may be replacing the file right now
        return None


def last_line(error: BaseException) -> str:
    """Return the last non-blank line of an error: the exception line of a remote traceback."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
