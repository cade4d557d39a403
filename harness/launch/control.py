"""`harness status` and `harness cancel` of a sweep folder.

A point's state comes from its status.json, which its job writes, corrected by the
state of its SLURM job. A job that SLURM reports ended (cancelled, timed out, failed
on a node) cannot still be running, whatever its status.json last recorded.
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from harness.errors import LaunchError, ResultsError
from harness.launch.accounting import base_state, cancel_jobs, is_final, job_states, queued_states
from harness.launch.job import JOB_LOG_FILE
from harness.launch.job_records import read_job_records
from harness.results.layout import CONFIG_FILE, SWEEP_FILE, PointPaths
from harness.results.status import PointState, PointStatus, read_status, write_status

logger = logging.getLogger(__name__)

CANCEL_POLL_INTERVAL_S = 1.0


@dataclass(frozen=True)
class PointRow:
    point_id: str
    state: str
    job_id: str | None
    slurm_state: str | None
    levels: str
    log: str
    error: str | None


def displayed_state(status_state: PointState | None, slurm_state: str | None) -> str:
    """Combine a point's status.json state with its SLURM job's state.

    - a point that its job marked done stays done;
    - a cancelled SLURM job makes the point cancelled;
    - a failed point whose job is queued again was requeued (preemption), so it is pending;
    - any other ended job (COMPLETED, FAILED, TIMEOUT, NODE_FAIL, ...) whose point is not
      final failed without recording why, e.g. killed at its time limit;
    - a queued point whose job runs is starting;
    - otherwise status.json decides (unknown when the job has not written it).
    """
    state = status_state.value if status_state is not None else "unknown"
    if not slurm_state:
        return state
    slurm_base = base_state(slurm_state)
    if status_state == PointState.done:
        return state
    if slurm_base == "CANCELLED":
        return PointState.cancelled.value
    if status_state == PointState.failed and slurm_base in ("PENDING", "REQUEUED"):
        return PointState.pending.value
    if status_state is not None and status_state.final:
        return state
    if is_final(slurm_state):
        return PointState.failed.value
    if status_state in (None, PointState.pending) and slurm_base == "RUNNING":
        return PointState.starting.value
    return state


def point_ids(sweep_dir: Path) -> list[str]:
    """Return the sweep's point ids, in the order of its sweep.yaml."""
    sweep_file = sweep_dir / SWEEP_FILE
    if not sweep_file.is_file():
        sweeps = sorted(path.parent.name for path in sweep_dir.glob(f"*/{SWEEP_FILE}"))
        hint = f"; sweeps in it: {', '.join(sweeps)}" if sweeps else ""
        raise ResultsError(f"{sweep_dir} has no {SWEEP_FILE}: pass a sweep folder, results/<experiment>/<timestamp>{hint}")
    try:
        record = yaml.safe_load(sweep_file.read_text())
        return [str(point["id"]) for point in record.get("points") or []]
    except (OSError, yaml.YAMLError, AttributeError, KeyError, TypeError) as error:
        raise ResultsError(f"invalid {sweep_file}: {error}") from None


def sweep_rows(sweep_dir: Path) -> list[PointRow]:
    """Return one row per point of the sweep, asking SLURM about all its jobs at once."""
    records = read_job_records(sweep_dir)
    slurm_ids = [record.job_id for record in records.values() if record.executor == "slurm"]
    slurm_states = _states_or_warn(slurm_ids)

    rows = []
    for point_id in point_ids(sweep_dir):
        paths = PointPaths(sweep_dir / point_id)
        status = _read_status_or_none(paths)
        record = records.get(point_id)
        job_id = None
        slurm_state = None
        if record is not None:
            job_id = record.job_id
            if record.executor == "slurm":
                slurm_state = slurm_states.get(job_id)
        elif status is not None:
            job_id = status.job_id
        rows.append(PointRow(
            point_id=point_id,
            state=displayed_state(status.state if status else None, slurm_state),
            job_id=job_id,
            slurm_state=slurm_state,
            levels=_levels_text(status),
            log=record.log if record is not None and record.log else str(paths.logs / JOB_LOG_FILE),
            error=status.error if status else None,
        ))
    return rows


def status_command(sweep_dir: Path, console: Console) -> int:
    """Print the state, job, level progress and log of every point; return 0."""
    rows = sweep_rows(sweep_dir)
    table = Table(title=f"sweep {sweep_dir}")
    for column in ("point", "state", "job", "SLURM state", "levels", "log", "error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row.point_id, row.state, row.job_id or "", row.slurm_state or "", row.levels,
                      row.log, _first_line(row.error))
    console.print(table)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    console.print(", ".join(f"{count} {state}" for state, count in sorted(counts.items())))
    return 0


def cancel_command(sweep_dir: Path, console: Console, wait_s: float = 60.0) -> int:
    """scancel the sweep's queued and running jobs, wait until they end, mark their points cancelled."""
    records = read_job_records(sweep_dir)
    if records and all(record.executor == "local" for record in records.values()):
        raise LaunchError(
            f"the points of {sweep_dir} run with the local executor, inside the `harness sweep` "
            "process: stop that process (Ctrl-C) to cancel them"
        )
    targets = {
        row.point_id: row.job_id for row in sweep_rows(sweep_dir)
        if row.job_id and row.point_id in records and not _has_ended(row)
    }
    if not targets:
        console.print(f"nothing to cancel in {sweep_dir}: no point is queued or running")
        return 0

    job_ids = sorted(set(targets.values()))
    cancel_jobs(job_ids)
    logger.info("scancel %s", " ".join(job_ids))
    still_queued = _wait_for_end(job_ids, wait_s)

    for point_id, job_id in targets.items():
        _mark_cancelled(PointPaths(sweep_dir / point_id), job_id, still_queued.get(job_id))
    table = Table(title=f"cancelled in {sweep_dir}")
    for column in ("point", "job", "SLURM state after scancel"):
        table.add_column(column)
    for point_id, job_id in targets.items():
        table.add_row(point_id, job_id, still_queued.get(job_id, "ended"))
    console.print(table)
    if still_queued:
        console.print(f"{len(still_queued)} jobs had not ended after {wait_s:.0f} s; `harness status {sweep_dir}` shows them")
    return 0


def _has_ended(row: PointRow) -> bool:
    if row.slurm_state is not None:
        return is_final(row.slurm_state)
    # Neither sacct nor squeue lists the job, so status.json decides.
    return row.state in {state.value for state in PointState if state.final}


def _wait_for_end(job_ids: list[str], wait_s: float) -> dict[str, str]:
    """Poll squeue until no job is listed or wait_s passed; return the jobs still listed."""
    deadline_s = time.monotonic() + wait_s
    while True:
        listed = {job_id: state for job_id, state in queued_states(job_ids).items() if not is_final(state)}
        if not listed or time.monotonic() > deadline_s:
            return listed
        time.sleep(CANCEL_POLL_INTERVAL_S)


def _mark_cancelled(paths: PointPaths, job_id: str, slurm_state: str | None) -> None:
    status = _read_status_or_none(paths) or PointStatus(point_id=paths.root.name, job_id=job_id)
    if status.state == PointState.done:
        return
    status.state = PointState.cancelled
    status.error = f"cancelled with `harness cancel` (job {job_id})"
    if slurm_state is not None:
        status.error += f"; the job was still {slurm_state} when harness stopped waiting"
    status.current_level = None
    status.level_progress = None
    write_status(paths.status, status)


def _states_or_warn(job_ids: list[str]) -> dict[str, str]:
    try:
        return job_states(job_ids)
    except LaunchError as error:
        logger.warning("SLURM job states unavailable, showing status.json only: %s", error)
        return {}


def _read_status_or_none(paths: PointPaths) -> PointStatus | None:
    if not (paths.root / CONFIG_FILE).exists() and not paths.status.exists():
        return None
    try:
        return read_status(paths.status)
    except FileNotFoundError:
        return None
    except ResultsError as error:
        logger.warning("%s", error)
        return None


def _levels_text(status: PointStatus | None) -> str:
    if status is None:
        return ""
    text = f"{len(status.levels_done)}/{status.levels_total}"
    if status.current_level:
        text += f", measuring {status.current_level}"
        progress = status.level_progress or {}
        if progress.get("total"):
            text += f" {progress.get('done')}/{progress.get('total')} requests"
    return text


def _first_line(text: str | None) -> str:
    return text.splitlines()[0] if text else ""
