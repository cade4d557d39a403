"""Scrape every worker's Prometheus /metrics about once a second while a load level runs.

A background thread scrapes all workers in parallel at each tick, with one scrape
at start() and one at stop() so that counter deltas cover the whole level. Each scrape
adds one row per configured metric, with the columns of COLUMNS: the level, the worker,
the wall clock and perf_counter stamps in ns, the MetricNames field name (`metric`) and
the Prometheus name found (`name`). `value` is the sum over label sets, and `series`
is the number of label sets summed.

A failed scrape is counted and logged once per worker, and sampling goes on: the
load level matters more than its server-side time series.
"""

import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.loadgen.prometheus_text import ExpositionError, parse_exposition

logger = logging.getLogger(__name__)

# MetricNames fields in the order of the rows, so each scrape's rows read the same way.
METRIC_FIELDS = (
    "queue_depth",
    "running_requests",
    "kv_usage",
    "prompt_tokens_total",
    "generation_tokens_total",
    "busy_seconds_total",
)
COLUMNS = ("level", "worker", "wall_ns", "perf_ns", "metric", "name", "value", "series")
_DTYPES = {
    "level": "string",
    "worker": "string",
    "wall_ns": "int64",
    "perf_ns": "int64",
    "metric": "string",
    "name": "string",
    "value": "float64",
    "series": "int64",
}

# A direct connection: the workers are on the job's own nodes, where an HTTP proxy from
# the environment (http_proxy) would only get in the way. aiohttp in the load generator
# ignores those variables too.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class ScrapeTarget:
    """A worker's name and the full URL of its Prometheus endpoint."""

    worker: str
    url: str


class MetricsSampler:
    """Sample the configured metrics of every target between start(level) and stop().

    metric_names maps MetricNames field names to Prometheus names, e.g. the
    engine.metrics section of a config; fields that are missing or null are skipped.
    target_metric_names gives some targets their own mapping in place of metric_names,
    by target name (a router that exports other names than its workers).
    """

    def __init__(
        self,
        targets: Sequence[tuple[str, str]],
        metric_names: Mapping[str, str | None],
        interval_s: float = 1.0,
        timeout_s: float = 1.0,
        target_metric_names: Mapping[str, Mapping[str, str | None]] | None = None,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s={interval_s} is invalid; use a positive number of seconds")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s={timeout_s} is invalid; use a positive number of seconds")
        self.targets = [ScrapeTarget(worker, url) for worker, url in targets]
        self.metrics = _configured_names(metric_names)
        self.target_metrics = {
            target.worker: _configured_names((target_metric_names or {}).get(target.worker, metric_names))
            for target in self.targets
        }
        self.interval_s = interval_s
        self.timeout_s = timeout_s

        # Failed scrapes per worker over the sampler's life, and the warnings already
        # logged, so that a dead endpoint logs one line rather than one per second.
        self.failures: dict[str, int] = {target.worker: 0 for target in self.targets}
        self._warned_workers: set[str] = set()
        self._warned_missing: set[tuple[str, str]] = set()

        self._level: str | None = None
        self._rows: list[dict[str, Any]] = []
        self._level_failures = 0
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, min(len(self.targets), 32)), thread_name_prefix="metrics-scrape"
        )

    def start(self, level: str) -> None:
        """Scrape once now, then about every interval_s in a background thread.

        The first scrape returns before start() does, so counter deltas include every
        request that the caller sends after start().
        """
        if self._thread is not None:
            raise RuntimeError(f"sampler is already sampling level {self._level}; call stop() first")
        self._level = level
        self._rows = []
        self._level_failures = 0
        self._stop_event.clear()
        if not any(self.target_metrics.values()):
            logger.info("level %s: no metrics to sample (no workers or no engine.metrics names)", level)
        self._scrape_all()
        self._thread = threading.Thread(target=self._run, name=f"metrics-sampler-{level}", daemon=True)
        self._thread.start()

    def stop(self) -> pd.DataFrame:
        """Scrape once more, stop the thread and return this level's rows."""
        if self._thread is None:
            raise RuntimeError("sampler is not running; call start(level) first")
        self._stop_event.set()
        self._thread.join()
        self._thread = None
        self._scrape_all()

        if self._level_failures:
            logger.warning(
                "level %s: %d scrapes of /metrics failed; its server_metrics rows have gaps",
                self._level, self._level_failures,
            )
        with self._lock:
            rows, self._rows = self._rows, []
        return metrics_frame(rows)

    def close(self) -> None:
        """Stop a running level (discarding its rows) and free the scrape threads."""
        if self._thread is not None:
            self._stop_event.set()
            self._thread.join()
            self._thread = None
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "MetricsSampler":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self) -> None:
        # Ticks are absolute (start + k * interval), so the scrape time does not add up
        # to a drift. A tick missed because a scrape was slow is skipped.
        # start() has taken the first scrape, so the loop waits before each of its own.
        start_perf_s = time.perf_counter()
        tick = 0
        try:
            while True:
                tick += 1
                next_tick_s = start_perf_s + tick * self.interval_s
                now_s = time.perf_counter()
                if now_s > next_tick_s:
                    tick = int((now_s - start_perf_s) / self.interval_s) + 1
                    next_tick_s = start_perf_s + tick * self.interval_s
                if self._stop_event.wait(next_tick_s - now_s):
                    return
                self._scrape_all()
        except Exception:
            # The level goes on without server metrics rather than failing.
            logger.exception("metrics sampler of level %s stopped on an unexpected error", self._level)

    def _scrape_all(self) -> None:
        if not any(self.target_metrics.values()):
            return
        for rows in self._pool.map(self._scrape, self.targets):
            with self._lock:
                self._rows.extend(rows)

    def _scrape(self, target: ScrapeTarget) -> list[dict[str, Any]]:
        metrics = self.target_metrics[target.worker]
        if not metrics:
            return []
        send_perf_ns = time.perf_counter_ns()
        send_wall_ns = time.time_ns()
        try:
            with _OPENER.open(target.url, timeout=self.timeout_s) as response:
                body = response.read().decode("utf-8", errors="replace")
            exposition = parse_exposition(body)
        except (OSError, ExpositionError) as error:
            # urllib's URLError, HTTPError and timeouts are all OSError subclasses.
            self._count_failure(target, error)
            return []
        receive_perf_ns = time.perf_counter_ns()

        # The server rendered its values somewhere between send and receive; the midpoint
        # is the best estimate of that moment, on both clocks.
        perf_ns = (send_perf_ns + receive_perf_ns) // 2
        wall_ns = send_wall_ns + (perf_ns - send_perf_ns)
        rows = []
        for metric, name in metrics.items():
            total = exposition.total(name)
            if total is None:
                self._warn_missing(target, metric, name)
                continue
            rows.append({
                "level": self._level,
                "worker": target.worker,
                "wall_ns": wall_ns,
                "perf_ns": perf_ns,
                "metric": metric,
                "name": total.name,
                "value": total.value,
                "series": total.series,
            })
        return rows

    def _count_failure(self, target: ScrapeTarget, error: Exception) -> None:
        with self._lock:
            self.failures[target.worker] += 1
            self._level_failures += 1
            first = target.worker not in self._warned_workers
            self._warned_workers.add(target.worker)
        if first:
            logger.warning(
                "scrape of %s for worker %s failed: %s; sampling goes on, and further failures "
                "are only counted", target.url, target.worker, error,
            )

    def _warn_missing(self, target: ScrapeTarget, metric: str, name: str) -> None:
        key = (target.worker, metric)
        with self._lock:
            first = key not in self._warned_missing
            self._warned_missing.add(key)
        if first:
            logger.warning(
                "metric %s not found in %s of worker %s; check engine.metrics.%s against the "
                "engine's /metrics", name, target.url, target.worker, metric,
            )


def _configured_names(metric_names: Mapping[str, str | None]) -> dict[str, str]:
    """Return field -> Prometheus name for the METRIC_FIELDS that have a name, in their order."""
    return {field: metric_names[field] for field in METRIC_FIELDS if metric_names.get(field) is not None}


def metrics_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Build a server_metrics table with the COLUMNS and their dtypes, also when rows is empty."""
    frame = pd.DataFrame(list(rows), columns=list(COLUMNS))
    return frame.astype(_DTYPES)


def read_metrics_frame(path: Path, levels: Sequence[str]) -> pd.DataFrame:
    """Read the rows of the given levels from an earlier server_metrics.parquet.

    Returns an empty table when the file is missing. An unreadable file is logged and
    treated as missing, because losing old time series must not stop a new measurement.
    """
    if not path.exists():
        return metrics_frame([])
    try:
        frame = pd.read_parquet(path)
        selected = frame[frame["level"].isin(list(levels))].reset_index(drop=True)
        return selected.astype(_DTYPES)
    except (OSError, ValueError, KeyError) as error:
        logger.warning("cannot read %s (%s); the server metrics of earlier levels are lost", path, error)
        return metrics_frame([])
