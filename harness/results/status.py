"""status.json of a point: its state, levels done, the running level's progress, error and log paths."""

import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

from harness.errors import ResultsError
from harness.results.io import read_json, write_json_atomic


class PointState(str, Enum):
    pending = "pending"
    starting = "starting"
    running = "running"
    done = "done"
    failed = "failed"
    # Set by `harness cancel` after it cancelled the point's job.
    cancelled = "cancelled"

    @property
    def final(self) -> bool:
        """Return whether the point has ended (done, failed or cancelled)."""
        return self in (PointState.done, PointState.failed, PointState.cancelled)


@dataclass
class PointStatus:
    point_id: str
    state: PointState = PointState.pending
    levels_total: int = 0
    levels_done: list[str] = field(default_factory=list)
    error: str | None = None
    job_id: str | None = None
    log_paths: list[str] = field(default_factory=list)
    # The level being measured, and its latest progress: phase (warmup or measure), done,
    # total, failed and in_flight requests, output_tokens and elapsed_s of the phase.
    # Both are null between levels; after a failure they show where it happened.
    current_level: str | None = None
    level_progress: dict[str, float | int | str] | None = None
    updated_wall_s: float = 0.0

    def to_json(self) -> dict:
        data = asdict(self)
        data["state"] = self.state.value
        return data


def write_status(path: Path, status: PointStatus) -> None:
    status.updated_wall_s = time.time()
    write_json_atomic(path, status.to_json())


def read_status(path: Path) -> PointStatus:
    try:
        data = read_json(path)
        data["state"] = PointState(data["state"])
        return PointStatus(**data)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ResultsError(
            f"invalid status file {path}: {error}; delete it to measure the point again"
        ) from None
