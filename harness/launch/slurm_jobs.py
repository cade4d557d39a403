"""Submit a sweep's points to SLURM and wait for their jobs.

Points whose allocations match go into one job array (at most cluster.array_parallelism
of its tasks run at a time), the others into jobs of their own.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import submitit
from submitit.core.utils import FailedJobError

from harness.launch.allocation import array_key, slurm_parameters
from harness.launch.job import PointJob
from harness.launch.job_records import JobRecord, write_job_records
from harness.launch.outcomes import (
    PointOutcome,
    cancelled_outcome,
    last_line,
    point_outcome,
    read_status_quietly,
)
from harness.launch.plan import Point
from harness.results.layout import PointPaths
from harness.results.status import PointState, PointStatus, write_status

logger = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.5
FORCED_CHECK_S = 2.0


@dataclass(frozen=True)
class Submission:
    """A point and its job, or the reason it could not be submitted."""

    point: Point
    job: submitit.Job | None
    error: str | None = None


def submit_slurm(sweep_dir: Path, points: list[Point]) -> list[Submission]:
    """Submit the points as SLURM job arrays (one per set of equal allocations) or single jobs.

    A submission that sbatch rejects (for example a request the partition cannot satisfy)
    fails those points with SLURM's message and the other points are still submitted.
    """
    experiment = sweep_dir.parent.name
    groups: dict[str, list[tuple[Point, dict]]] = {}
    for point in points:
        parameters = slurm_parameters(point.cfg.cluster, point.topology, job_name=f"harness-{point.point_id}")
        groups.setdefault(array_key(parameters), []).append((point, parameters))

    submissions: list[Submission] = []
    records: dict[str, JobRecord] = {}
    for group in groups.values():
        group_points = [point for point, _ in group]
        parameters = dict(group[0][1])
        executor = submitit.SlurmExecutor(folder=sweep_dir / "submitit" / "%j")
        if len(group) > 1:
            parameters["job_name"] = f"harness-{experiment}"
            parameters["array_parallelism"] = group_points[0].cfg.cluster.array_parallelism
        try:
            executor.update_parameters(**parameters)
            jobs = _submit_group(executor, sweep_dir, group_points)
        except (FailedJobError, OSError, ValueError) as error:
            message = f"sbatch rejected the job: {last_line(error)}"
            logger.error("points %s: %s", ", ".join(point.point_id for point in group_points), message)
            for point in group_points:
                _mark_failed(sweep_dir, point, message)
                submissions.append(Submission(point=point, job=None, error=message))
            continue

        for point, job in zip(group_points, jobs):
            logger.info("submitted point %s as SLURM job %s", point.point_id, job.job_id)
            submissions.append(Submission(point=point, job=job))
            records[point.point_id] = JobRecord(job_id=str(job.job_id), executor="slurm", log=str(job.paths.stderr))
        write_job_records(sweep_dir, records)
    return submissions


def _submit_group(executor: submitit.SlurmExecutor, sweep_dir: Path, points: list[Point]) -> list[submitit.Job]:
    calls = [PointJob(str(sweep_dir / point.point_id)) for point in points]
    if len(calls) == 1:
        return [executor.submit(calls[0])]
    with executor.batch():
        jobs = [executor.submit(call) for call in calls]
    return jobs


def wait_slurm(
    sweep_dir: Path, submissions: list[Submission], refresh: Callable[[Point], None], advance: Callable[[], None]
) -> list[PointOutcome]:
    """Wait until every submitted job has ended; return the outcomes in submission order.

    refresh(point) updates the point's progress display, and advance() counts a finished point.
    """
    finished: dict[str, PointOutcome] = {}
    for submission in submissions:
        if submission.job is None:
            finished[submission.point.point_id] = PointOutcome(
                point=submission.point, state=PointState.failed.value,
                point_dir=sweep_dir / submission.point.point_id, error=submission.error,
            )
            advance()

    last_forced_s = 0.0
    while len(finished) < len(submissions):
        # submitit calls sacct at growing intervals (up to 10 minutes apart). When a point's
        # status.json is final, the job is ending, so call it now. One forced sacct call
        # covers every job of the sweep, so there is at most one per FORCED_CHECK_S.
        may_force = time.monotonic() - last_forced_s > FORCED_CHECK_S
        for submission in submissions:
            point, job = submission.point, submission.job
            if point.point_id in finished:
                continue
            refresh(point)
            status = read_status_quietly(PointPaths(sweep_dir / point.point_id))
            if status is not None and status.state == PointState.cancelled:
                # An array task cancelled while pending never gets a sacct record, so
                # submitit would wait for it forever; `harness cancel` marked it instead.
                finished[point.point_id] = cancelled_outcome(sweep_dir, point, status)
                advance()
                continue
            force = may_force and status is not None and status.state.final
            if force:
                may_force = False
                last_forced_s = time.monotonic()
            if job.done(force_check=force):
                finished[point.point_id] = point_outcome(sweep_dir, point, job)
                advance()
        time.sleep(POLL_INTERVAL_S)
    return [finished[submission.point.point_id] for submission in submissions]


def _mark_failed(sweep_dir: Path, point: Point, message: str) -> None:
    paths = PointPaths(sweep_dir / point.point_id)
    status = read_status_quietly(paths) or PointStatus(point_id=point.point_id)
    status.state = PointState.failed
    status.error = message
    write_status(paths.status, status)
