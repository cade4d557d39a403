"""jobs.json of a sweep: the job id and job log of every submitted point.

The sweep command writes it after each submission, so that `harness status` and
`harness cancel` find the jobs of a sweep while they are queued, before any job has
written its point's status.json.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

from harness.errors import ResultsError
from harness.results.io import read_json, write_json_atomic

JOBS_FILE = "jobs.json"


@dataclass(frozen=True)
class JobRecord:
    # submitit's job id: 123 for a job, 123_4 for task 4 of a job array.
    job_id: str
    # The executor that ran it: slurm or local.
    executor: str
    # The job's stderr file (submitit's log), where a Python traceback of the job goes.
    log: str | None = None


def write_job_records(sweep_dir: Path, records: dict[str, JobRecord]) -> None:
    write_json_atomic(sweep_dir / JOBS_FILE, {point_id: asdict(record) for point_id, record in records.items()})


def read_job_records(sweep_dir: Path) -> dict[str, JobRecord]:
    """Return point id -> JobRecord, or an empty dict when the sweep has no jobs.json yet."""
    path = sweep_dir / JOBS_FILE
    try:
        data = read_json(path)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise ResultsError(f"invalid job file {path}: {error}") from None
    try:
        return {point_id: JobRecord(**fields) for point_id, fields in data.items()}
    except (AttributeError, TypeError) as error:
        raise ResultsError(f"invalid job file {path}: {error}") from None
