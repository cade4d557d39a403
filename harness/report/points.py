"""The collected table regrouped by point, with the labels and load axis that the plots use."""

import re
from dataclasses import dataclass

import pandas as pd

from harness.results.table import is_missing, row_parallelism_label, swept_columns

# mode.name of the runs that measure one phase with a workload shaped for it.
ISOLATED_MODES = ("prefill", "decode")


@dataclass(frozen=True)
class ReportPoint:
    """One point of the report: its ids, a label for legends, and its collected level rows."""

    point_dir: str
    point_id: str
    experiment: str
    sweep: str
    mode: str
    label: str
    # Unique among the report's points and safe in a file name.
    slug: str
    # The point's rows of the collected table, ordered by load.
    levels: pd.DataFrame

    @property
    def isolated(self) -> bool:
        return self.mode in ISOLATED_MODES


def report_points(frame: pd.DataFrame) -> list[ReportPoint]:
    """Group the collected table by point folder, in the table's order."""
    if frame.empty:
        return []
    swept = swept_columns(frame)
    repeated_ids = frame.drop_duplicates("point_dir")["point_id"].duplicated(keep=False)
    repeated = set(frame.drop_duplicates("point_dir")["point_id"][repeated_ids])

    points = []
    for point_dir, rows in frame.groupby("point_dir", sort=False):
        first = rows.iloc[0]
        point_id = str(first["point_id"])
        sweep = str(first["sweep"])
        # A point measured again in a later sweep keeps its id, so its label and file name add the sweep.
        name = f"{point_id} ({sweep})" if point_id in repeated else point_id
        slug_source = f"{sweep}-{point_id}" if point_id in repeated else point_id
        points.append(ReportPoint(
            point_dir=str(point_dir),
            point_id=point_id,
            experiment=str(first["experiment"]),
            sweep=sweep,
            mode=_text(first.get("mode.name")),
            label=" ".join(part for part in (name, _describe(first, swept)) if part),
            slug=re.sub(r"[^A-Za-z0-9_.-]+", "_", slug_source),
            levels=_order_by_load(rows),
        ))
    return points


def is_open_loop(row: pd.Series) -> bool:
    """Return whether a level row was measured open loop, with a request rate."""
    return not is_missing(row.get("request_rate"))


def level_load(row: pd.Series) -> float:
    """Return a level row's load: its request rate when open loop, else its concurrency."""
    if is_open_loop(row):
        return float(row["request_rate"])
    concurrency = row.get("concurrency")
    return float("nan") if is_missing(concurrency) else float(concurrency)


def load_axis_label(open_loop: bool) -> str:
    return "request rate (requests/s, open loop)" if open_loop else "concurrency (requests in flight)"


def number(row: pd.Series, column: str) -> float:
    """Return a numeric cell as float, NaN when missing, so that plots leave a gap."""
    value = row.get(column)
    return float("nan") if is_missing(value) else float(value)


def is_valid(row: pd.Series) -> bool:
    """Return whether a level row is valid; a missing flag counts as invalid."""
    value = row.get("valid")
    return not is_missing(value) and bool(value)


def _describe(row: pd.Series, swept: list[str]) -> str:
    mode = _text(row.get("mode.name"))
    parts = [mode, row_parallelism_label(row)]
    if mode == "disagg":
        parts.append(f"{_text(row.get('mode.prefill_workers'))}P{_text(row.get('mode.decode_workers'))}D")
    parts.extend(
        f"{column.removeprefix('engine.args.')}={_text(row.get(column))}"
        for column in swept
        if not is_missing(row.get(column))
    )
    return " ".join(part for part in parts if part)


def _order_by_load(rows: pd.DataFrame) -> pd.DataFrame:
    loads = rows.apply(level_load, axis=1) if not rows.empty else pd.Series(dtype=float)
    open_loop = rows.apply(is_open_loop, axis=1) if not rows.empty else pd.Series(dtype=bool)
    ordered = rows.assign(_open_loop=open_loop, _load=loads)
    ordered = ordered.sort_values(["_open_loop", "_load", "level"], kind="mergesort")
    return ordered.drop(columns=["_open_loop", "_load"]).reset_index(drop=True)


def _text(value: object) -> str:
    if is_missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
