"""Collect every measured level below some result folders into one pandas table.

One row per (point, level). The row contains the point's place in the results tree,
its state, the level's summary.json (stats objects flattened to ttft_ms_p50 and so on,
flags joined with "; ") and the point's config.yaml flattened to dotted keys.
"""

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow
import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from rich.console import Console

from harness.errors import ResultsError
from harness.results.io import read_json, write_parquet_atomic
from harness.results.layout import CONFIG_FILE, LEVELS_DIR, STATUS_FILE, SUMMARY_FILE
from harness.results.table import is_missing, print_results_table

logger = logging.getLogger(__name__)

STATS_KEYS = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")
STATS_FIELDS = ("mean", "std", "min", "max", "p50", "p90", "p95", "p99")
ID_COLUMNS = ("experiment", "sweep", "point_id", "point_dir", "level", "state")
DEFAULT_OUTPUT_NAME = "results.parquet"

# Open-loop levels may have no concurrency, so the request rate and then the level
# name break ties.
SORT_COLUMNS = ("experiment", "sweep", "point_id", "concurrency", "request_rate", "level")


def collect(paths: Sequence[Path | str]) -> pd.DataFrame:
    """Collect one row per (point, level) from every point folder below the paths.

    A path may be a results root, an experiment, a sweep or a point folder. A point
    with no finished level contributes no row. Raises ResultsError for a missing path,
    a path with no point folder below it, or an unreadable or invalid file.
    """
    if not paths:
        raise ResultsError("no results folder given; pass at least one folder to collect")

    point_dirs: dict[Path, None] = {}
    for path in paths:
        for point_dir in find_point_dirs(Path(path)):
            # Overlapping paths (a root and one of its sweeps) must not count a point twice.
            point_dirs[point_dir.resolve()] = None

    rows: list[dict[str, Any]] = []
    for point_dir in point_dirs:
        rows.extend(_point_rows(point_dir))
    logger.info("collected %d level rows from %d points", len(rows), len(point_dirs))

    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=list(ID_COLUMNS))
    frame = _order_columns(frame)
    frame = _unify_mixed_columns(frame)

    sort_by = [column for column in SORT_COLUMNS if column in frame.columns]
    frame = frame.sort_values(sort_by, kind="mergesort", na_position="last")
    return frame.reset_index(drop=True)


def find_point_dirs(path: Path) -> list[Path]:
    """Return every point folder (a folder with a config.yaml) at or below path, sorted."""
    if not path.exists():
        raise ResultsError(f"results folder {path} not found; check the path")
    if not path.is_dir():
        raise ResultsError(
            f"{path} is not a folder; pass a results, experiment, sweep or point folder"
        )

    found: list[Path] = []
    for folder, subfolders, files in os.walk(path):
        if CONFIG_FILE in files:
            found.append(Path(folder))
            # Points do not nest, so the walk skips a point's logs and levels.
            subfolders.clear()
        else:
            subfolders.sort()
    if not found:
        raise ResultsError(
            f"no point folder (a folder with {CONFIG_FILE}) found in {path}; pass a results, "
            "experiment, sweep or point folder written by `harness sweep`"
        )
    return sorted(found)


def load_table(paths: Sequence[Path | str]) -> pd.DataFrame:
    """Read .parquet tables written by `harness collect` and collect folders, then concatenate."""
    if not paths:
        raise ResultsError("no results given; pass a results.parquet file or a results folder")

    frames: list[pd.DataFrame] = []
    folders: list[Path] = []
    for raw_path in paths:
        path = Path(raw_path)
        if path.is_dir():
            folders.append(path)
        elif path.is_file() and path.suffix == ".parquet":
            frames.append(_read_parquet(path))
        elif path.exists():
            raise ResultsError(
                f"{path} is neither a .parquet table nor a folder; pass the output of "
                "`harness collect` or a results folder"
            )
        else:
            raise ResultsError(f"results path {path} not found; check the path")
    if folders:
        frames.append(collect(folders))

    frames = [frame for frame in frames if not frame.empty]
    if not frames:
        return pd.DataFrame(columns=list(ID_COLUMNS))
    return pd.concat(frames, ignore_index=True, sort=False)


def collect_command(
    paths: Sequence[Path | str],
    output: Path | str | None = None,
    console: Console | None = None,
) -> int:
    """Collect the paths, write the table as Parquet, print it and return exit status 0.

    The default output is results.parquet in the first path. Errors are raised as
    ResultsError for the CLI to report.
    """
    frame = collect(paths)
    output_path = Path(output) if output is not None else Path(paths[0]) / DEFAULT_OUTPUT_NAME
    write_parquet_atomic(output_path, frame)

    console = console or Console()
    print_results_table(frame, console)
    console.print(f"{len(frame)} rows written to {output_path}")
    return 0


def _point_rows(point_dir: Path) -> list[dict[str, Any]]:
    """Return one row per level folder of one point that contains a summary.json."""
    level_summaries = sorted((point_dir / LEVELS_DIR).glob(f"*/{SUMMARY_FILE}"))
    if not level_summaries:
        logger.debug("point %s has no measured level yet", point_dir)
        return []

    config = _read_config(point_dir / CONFIG_FILE)
    config_columns = flatten_config(config)
    gpus_per_worker = _gpus_per_worker(config, point_dir / CONFIG_FILE)
    state = _read_state(point_dir / STATUS_FILE)

    rows = []
    for summary_path in level_summaries:
        row: dict[str, Any] = {
            "experiment": point_dir.parent.parent.name,
            "sweep": point_dir.parent.name,
            "point_id": point_dir.name,
            "point_dir": str(point_dir),
            "level": summary_path.parent.name,
            "state": state,
        }
        row.update(flatten_summary(_read_json_object(summary_path), summary_path))
        row["gpus_per_worker"] = gpus_per_worker
        row.update(config_columns)
        rows.append(row)
    return rows


def flatten_summary(summary: dict[str, Any], path: Path | str = "summary.json") -> dict[str, Any]:
    """Flatten one summary.json: stats objects to ttft_ms_p50 etc., flags to one string.

    Every stats column exists even when the summary stores null for it (TPOT of a
    one-token output), so that tables of different levels share their columns.
    The folder name, not the summary's own "level" key, names the level.
    """
    flat: dict[str, Any] = {}
    for key, value in summary.items():
        if key == "level":
            continue
        if key in STATS_KEYS:
            flat.update(_flatten_stats(key, value, path))
        elif key == "flags":
            flat[key] = "; ".join(str(flag) for flag in value or [])
        elif isinstance(value, dict):
            for sub_key, sub_value in value.items():
                flat[f"{key}_{sub_key}"] = sub_value
        elif isinstance(value, list):
            flat[key] = json.dumps(value)
        else:
            flat[key] = value
    for key in STATS_KEYS:
        if key not in summary:
            flat.update(_flatten_stats(key, None, path))
    return flat


def flatten_config(config: dict[str, Any]) -> dict[str, Any]:
    """Flatten a config to dotted keys, with lists as JSON strings and without the sweep key."""
    flat: dict[str, Any] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, sub_value in value.items():
                visit(f"{prefix}.{key}" if prefix else str(key), sub_value)
        elif isinstance(value, dict):
            # An empty mapping (engine.args: {}) adds no column.
            return
        elif isinstance(value, list):
            flat[prefix] = json.dumps(value)
        else:
            flat[prefix] = value

    for key, value in config.items():
        if key != "sweep":
            visit(str(key), value)
    return flat


def _flatten_stats(key: str, value: Any, path: Path | str) -> dict[str, Any]:
    if value is None:
        return {f"{key}_{field}": math.nan for field in STATS_FIELDS}
    if not isinstance(value, dict):
        raise ResultsError(
            f"{path}: {key} is {value!r}, expected an object with {', '.join(STATS_FIELDS)}; "
            "delete the level folder and re-run the point"
        )
    return {
        f"{key}_{field}": math.nan if value.get(field) is None else value[field]
        for field in STATS_FIELDS
    }


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultsError(
            f"cannot read {path}: {error}; delete the file's level folder and re-run the point"
        ) from None
    if not isinstance(data, dict):
        raise ResultsError(
            f"{path} contains a JSON {type(data).__name__}, expected an object; "
            "delete the file's level folder and re-run the point"
        )
    return data


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, OmegaConfBaseException) as error:
        raise ResultsError(
            f"cannot read {path}: {error}; delete the point folder and re-run the point"
        ) from None
    if not isinstance(config, dict):
        raise ResultsError(
            f"{path} is not a YAML mapping; delete the point folder and re-run the point"
        )
    return config


def _read_state(path: Path) -> str | None:
    if not path.exists():
        logger.warning("%s is missing; the point's state is unknown", path)
        return None
    state = _read_json_object(path).get("state")
    return None if state is None else str(state)


def _gpus_per_worker(config: dict[str, Any], path: Path) -> int:
    parallelism = config.get("parallelism")
    if not isinstance(parallelism, dict):
        parallelism = {}
    sizes = [parallelism.get(key) for key in ("tp", "dp", "pp")]
    if not all(isinstance(size, int) and size >= 1 for size in sizes):
        raise ResultsError(
            f"{path}: parallelism.tp, .dp and .pp must be positive integers, found {sizes}; "
            "the file is not a resolved harness config, so delete the point folder and re-run it"
        )
    return sizes[0] * sizes[1] * sizes[2]


def _order_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Put the ids first, then summary columns, gpus_per_worker, then sorted config keys."""
    config_columns = sorted(column for column in frame.columns if "." in column)
    summary_columns = [
        column
        for column in frame.columns
        if column not in ID_COLUMNS and column not in config_columns and column != "gpus_per_worker"
    ]
    ordered = [*ID_COLUMNS, *summary_columns, "gpus_per_worker", *config_columns]
    return frame[ordered]


def _unify_mixed_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn object columns whose values mix types into JSON text, so Parquet can store them.

    An engine flag may be true in one point and 4096 in another; both become text
    ("true", "4096"), and strings stay as they are.
    """
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        kinds = {_value_kind(value) for value in frame[column] if not is_missing(value)}
        if len(kinds) > 1:
            frame[column] = [_as_text(value) for value in frame[column]]
    return frame


def _as_text(value: Any) -> str | None:
    if is_missing(value):
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _value_kind(value: Any) -> str:
    # bool is a subclass of int, and int and float share one Parquet column as double.
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, pyarrow.ArrowException) as error:
        raise ResultsError(
            f"cannot read {path}: {error}; re-create it with `harness collect`"
        ) from None
