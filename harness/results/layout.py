"""Folder layout of results, in one place so that writers and readers agree.

results/<experiment>/<sweep-timestamp>/
  sweep.yaml
  <point-id>/config.yaml, status.json, logs/, server_metrics.parquet
  <point-id>/levels/<level>/requests.parquet, summary.json
"""

from dataclasses import dataclass
from pathlib import Path

SWEEP_FILE = "sweep.yaml"
CONFIG_FILE = "config.yaml"
STATUS_FILE = "status.json"
SUMMARY_FILE = "summary.json"
REQUESTS_FILE = "requests.parquet"
SERVER_METRICS_FILE = "server_metrics.parquet"
LEVELS_DIR = "levels"
LOGS_DIR = "logs"


def level_name(concurrency: int | None = None, request_rate: float | None = None) -> str:
    """Name a load level's folder: c16 for concurrency 16, r2.5 for 2.5 requests/s."""
    if request_rate is not None:
        rate = f"{request_rate:g}"
        return f"r{rate}" if concurrency is None else f"r{rate}_c{concurrency}"
    if concurrency is None:
        raise ValueError("a load level needs a concurrency or a request rate")
    return f"c{concurrency}"


@dataclass(frozen=True)
class PointPaths:
    """Paths of one measured point of a sweep."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def status(self) -> Path:
        return self.root / STATUS_FILE

    @property
    def logs(self) -> Path:
        return self.root / LOGS_DIR

    @property
    def server_metrics(self) -> Path:
        return self.root / SERVER_METRICS_FILE

    def level_dir(self, level: str) -> Path:
        return self.root / LEVELS_DIR / level

    def summary(self, level: str) -> Path:
        return self.level_dir(level) / SUMMARY_FILE

    def requests(self, level: str) -> Path:
        return self.level_dir(level) / REQUESTS_FILE
