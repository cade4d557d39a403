"""SLURM job states from sacct and squeue, and scancel, one call for many jobs.

Job ids are submitit's: 123 for a job, 123_4 for task 4 of a job array. sacct may trail
the scheduler by seconds, because slurmctld sends records to slurmdbd asynchronously.
On Slurm 22.05 an array task cancelled while pending gets no record of its own at all.
So squeue reports the jobs that sacct does not list.
"""

import logging
import re
import subprocess
from collections.abc import Sequence

from harness.errors import LaunchError

logger = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 60
# States after which a job never runs again (sacct and squeue spellings).
FINAL_STATES = frozenset({
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
    "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "TIMEOUT",
})


def base_state(state: str) -> str:
    """Return the state word alone: `CANCELLED by 0` -> CANCELLED."""
    return state.split()[0].rstrip("+") if state.strip() else ""


def is_final(state: str) -> bool:
    return base_state(state) in FINAL_STATES


def parse_job_states(text: str) -> dict[str, str]:
    """Map job id to state from `JobID|State` lines, as sacct -P and squeue -o '%i|%T' print.

    Job steps (123.batch, 123.0) are skipped. A pending array range such as 123_[0-3%2]
    gives every task of the range the same state.
    """
    states: dict[str, str] = {}
    for line in text.splitlines():
        job_id, separator, state = line.strip().partition("|")
        if not separator or not job_id or "." in job_id:
            continue
        for expanded in _expand_array_id(job_id):
            states[expanded] = state.strip()
    return states


def job_states(job_ids: Sequence[str]) -> dict[str, str]:
    """Return the state of each job that sacct or squeue lists, with one call of each at most.

    Raises LaunchError when sacct cannot run (no accounting) and squeue fails too.
    """
    if not job_ids:
        return {}
    states: dict[str, str] = {}
    sacct_error = None
    try:
        states.update(parse_job_states(
            _run(["sacct", "-X", "--noheader", "--parsable2", "--format", "JobID,State", "--jobs", ",".join(job_ids)])
        ))
    except LaunchError as error:
        sacct_error = error
        logger.warning("%s; asking squeue instead", error)

    missing = [job_id for job_id in job_ids if job_id not in states]
    if missing:
        try:
            queued = queued_states(missing)
        except LaunchError:
            if sacct_error is not None:
                raise
            queued = {}
        states.update(queued)
    return {job_id: states[job_id] for job_id in job_ids if job_id in states}


def queued_states(job_ids: Sequence[str]) -> dict[str, str]:
    """Return the states of the jobs that squeue still lists; an ended job is left out."""
    if not job_ids:
        return {}
    command = ["squeue", "--noheader", "--array", "--format", "%i|%T", "--jobs", ",".join(job_ids)]
    result = _run_result(command)
    # squeue rejects a list whose jobs have all left the controller's memory.
    if result.returncode != 0 and "Invalid job id" in result.stderr:
        return {}
    if result.returncode != 0:
        raise LaunchError(f"{' '.join(command)} failed with exit code {result.returncode}: {result.stderr.strip()}")
    return parse_job_states(result.stdout)


def cancel_jobs(job_ids: Sequence[str]) -> None:
    """scancel every job in one call; raises LaunchError with scancel's message on failure."""
    if job_ids:
        _run(["scancel", *job_ids])


def _expand_array_id(job_id: str) -> list[str]:
    match = re.fullmatch(r"(\d+)_\[([^\]]+)\]", job_id)
    if match is None:
        return [job_id]
    array_id, ranges = match.group(1), match.group(2).split("%")[0]
    expanded = []
    for part in ranges.split(","):
        first, _, last = part.partition("-")
        for index in range(int(first), int(last or first) + 1):
            expanded.append(f"{array_id}_{index}")
    return expanded


def _run(command: list[str]) -> str:
    result = _run_result(command)
    if result.returncode != 0:
        raise LaunchError(f"{' '.join(command)} failed with exit code {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def _run_result(command: list[str]) -> subprocess.CompletedProcess[str]:
    logger.debug("running %s", " ".join(command))
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LaunchError(f"{' '.join(command)} failed: {error}") from None
