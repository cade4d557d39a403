"""Per-level views of a point's server_metrics.parquet: counter deltas and gauge series.

Workers are named "<role>-<index>" (aggregated-0, prefill-1, decode-0, router-0). A
counter's delta is the last sample minus the first sample of one worker within one
level. The sampler scrapes once when the level starts and once when it ends, so the
delta covers the whole level, warmup requests included.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow

from harness.errors import ResultsError
from harness.loadgen.sampler import COLUMNS

logger = logging.getLogger(__name__)

# Busy seconds of a worker, a counter in the simulator's naming. A file may store it
# under the field name or only under the Prometheus name.
BUSY_SECONDS_METRIC = "busy_seconds_total"
BUSY_SECONDS_NAME = "sim:busy_seconds_total"

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class CounterDelta:
    """Growth of one worker's counter over one level, and the seconds between its samples."""

    worker: str
    delta: float
    window_s: float

    @property
    def rate_per_s(self) -> float | None:
        """Return delta / window_s, or None when both samples share one time stamp."""
        return None if self.window_s <= 0 else self.delta / self.window_s


def read_server_metrics(path: Path) -> pd.DataFrame | None:
    """Read a point's server_metrics.parquet, or return None when the file does not exist.

    Raises ResultsError when the file cannot be read or lacks a column of the sampler.
    """
    if not path.exists():
        return None
    try:
        frame = pd.read_parquet(path)
    except (OSError, pyarrow.ArrowException) as error:
        raise ResultsError(f"cannot read {path}: {error}; re-run the point to measure it again") from None

    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise ResultsError(
            f"{path} is missing the columns {missing}; it was not written by the harness metrics "
            "sampler, so re-run the point"
        )
    return frame


def worker_role(worker: str) -> str:
    """Return the role part of a worker name: "prefill" for "prefill-3".

    A name without a "-<index>" suffix is returned unchanged.
    """
    role, separator, index = worker.rpartition("-")
    if separator and index.isdigit():
        return role
    return worker


def role_rows(frame: pd.DataFrame, role: str) -> pd.DataFrame:
    """Return the rows of the workers whose role is the given one."""
    roles = frame["worker"].astype(str).map(worker_role)
    return frame[roles == role]


def metric_rows(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Return the rows of one metric field, matching busy time by its Prometheus name too."""
    selected = frame["metric"].astype(str) == metric
    if metric == BUSY_SECONDS_METRIC:
        selected |= frame["name"].astype(str) == BUSY_SECONDS_NAME
    return frame[selected]


def counter_deltas(level_frame: pd.DataFrame, metric: str, role: str) -> list[CounterDelta]:
    """Return each role worker's counter delta within one level's rows, sorted by worker.

    A worker with fewer than two samples is left out. So is a counter that went down,
    a sign that the worker restarted during the level, and a warning is logged.
    """
    rows = metric_rows(role_rows(level_frame, role), metric)
    deltas = []
    for worker, samples in rows.groupby("worker", sort=True):
        samples = samples.sort_values("perf_ns", kind="mergesort")
        if len(samples) < 2:
            continue
        first = samples.iloc[0]
        last = samples.iloc[-1]
        delta = float(last["value"]) - float(first["value"])
        if delta < 0:
            logger.warning(
                "counter %s of worker %s fell from %s to %s in level %s, so the worker probably "
                "restarted and its delta is left out",
                metric, worker, first["value"], last["value"], first["level"],
            )
            continue
        window_s = (int(last["perf_ns"]) - int(first["perf_ns"])) / _NS_PER_S
        deltas.append(CounterDelta(worker=str(worker), delta=delta, window_s=window_s))
    return deltas


def interior_mean(level_frame: pd.DataFrame, metric: str, worker: str) -> float | None:
    """Return the mean of a worker's gauge over the samples between its first and last.

    The first and last samples are taken before the first request is sent and after
    the last one ends, so they show an idle server. None with fewer than three samples.
    """
    rows = metric_rows(level_frame[level_frame["worker"].astype(str) == worker], metric)
    values = rows.sort_values("perf_ns", kind="mergesort")["value"].astype(float)
    if len(values) < 3:
        return None
    return float(values.iloc[1:-1].mean())


def gauge_series(level_frame: pd.DataFrame, metric: str, role: str) -> dict[str, pd.DataFrame]:
    """Return each role worker's gauge as a frame of time_s (from the level's first sample) and value."""
    rows = metric_rows(role_rows(level_frame, role), metric)
    if rows.empty:
        return {}
    start_ns = int(level_frame["perf_ns"].min())
    series = {}
    for worker, samples in rows.groupby("worker", sort=True):
        samples = samples.sort_values("perf_ns", kind="mergesort")
        series[str(worker)] = pd.DataFrame({
            "time_s": (samples["perf_ns"].astype("int64") - start_ns) / _NS_PER_S,
            "value": samples["value"].astype(float),
        })
    return series
