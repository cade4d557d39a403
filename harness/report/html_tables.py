"""Cell text of the report's HTML tables: the collected levels and each point's rate matching."""

from dataclasses import dataclass

import pandas as pd

from harness.report.points import ReportPoint, is_open_loop
from harness.report.ratematch import RateMatch
from harness.results.table import is_missing, row_parallelism_label, swept_columns


@dataclass(frozen=True)
class TableRow:
    cells: tuple[str, ...]
    invalid: bool = False
    # Reasons the level is invalid, shown under the row.
    flags: str = ""


@dataclass(frozen=True)
class HtmlTable:
    headers: tuple[str, ...]
    rows: tuple[TableRow, ...]


LEVEL_HEADERS = (
    "point", "experiment / sweep", "mode", "parallelism", "swept args", "level", "GPUs",
    "ok / failed", "requests/s", "input tok/s/GPU", "output tok/s/GPU", "tok/s/user",
    "TTFT ms p50 / p90", "ITL ms p50 / p90", "valid",
)


def levels_table(points: list[ReportPoint], frame: pd.DataFrame) -> HtmlTable:
    """Build one row per collected level, marking invalid levels and carrying their flags."""
    swept = swept_columns(frame) if not frame.empty else []
    rows = []
    for point in points:
        for _, row in point.levels.iterrows():
            swept_text = " ".join(
                f"{column.removeprefix('engine.args.')}={_plain(row.get(column))}"
                for column in swept
                if not is_missing(row.get(column))
            )
            valid = row.get("valid")
            invalid = is_missing(valid) or not bool(valid)
            load = "open loop" if is_open_loop(row) else "closed loop"
            rows.append(TableRow(
                cells=(
                    point.point_id,
                    f"{point.experiment} / {point.sweep}",
                    point.mode or "-",
                    row_parallelism_label(row),
                    swept_text or "-",
                    f"{row['level']} ({load})",
                    _number(row.get("num_gpus"), "{:,.0f}"),
                    f"{_number(row.get('completed'), '{:.0f}')} / {_number(row.get('failed'), '{:.0f}')}",
                    _number(row.get("request_throughput_rps"), "{:,.2f}"),
                    _number(row.get("input_throughput_tps_per_gpu"), "{:,.0f}"),
                    _number(row.get("output_throughput_tps_per_gpu"), "{:,.0f}"),
                    _number(row.get("interactivity_tps_per_user"), "{:,.1f}"),
                    _pair(row, "ttft_ms", "{:,.1f}"),
                    _pair(row, "itl_ms", "{:,.2f}"),
                    _valid_text(valid),
                ),
                invalid=invalid,
                flags=_plain(row.get("flags")) if invalid else "",
            ))
    return HtmlTable(headers=LEVEL_HEADERS, rows=tuple(rows))


def rate_match_table(result: RateMatch, load_header: str) -> HtmlTable:
    """Build one row per level with the client's and the pools' rates and the capacities."""
    headers = (
        load_header, "level", "achieved requests/s",
        "client input tok/s", "client input tok/s / ISL", "prefill pool input tok/s",
        "prefill pool requests/s", "prefill capacity requests/s",
        "client output tok/s", "client output tok/s / OSL", "decode pool output tok/s",
        "decode pool requests/s", "decode capacity requests/s", "valid",
    )
    rows = []
    for level in result.levels:
        rows.append(TableRow(
            cells=(
                f"{level.load:g}",
                level.level,
                _number(level.achieved_rps, "{:,.3f}"),
                _number(level.client_input_tps, "{:,.0f}"),
                _number(level.client_input_rps, "{:,.3f}"),
                _number(level.prefill_input_tps, "{:,.0f}"),
                _number(level.prefill_input_rps, "{:,.3f}"),
                _capacity(level.prefill_capacity_rps, level.prefill_capacity_source),
                _number(level.client_output_tps, "{:,.0f}"),
                _number(level.client_output_rps, "{:,.3f}"),
                _number(level.decode_output_tps, "{:,.0f}"),
                _number(level.decode_output_rps, "{:,.3f}"),
                _capacity(level.decode_capacity_rps, level.decode_capacity_source),
                "yes" if level.valid else "no",
            ),
            invalid=not level.valid,
        ))
    return HtmlTable(headers=headers, rows=tuple(rows))


def _valid_text(valid: object) -> str:
    if is_missing(valid):
        return "?"
    return "yes" if bool(valid) else "no"


def _capacity(value: float | None, source) -> str:
    if value is None:
        return "-"
    return f"{value:,.3f} ({source.value})"


def _number(value: object, template: str) -> str:
    return "-" if is_missing(value) else template.format(float(value))


def _pair(row: pd.Series, stat: str, template: str) -> str:
    return f"{_number(row.get(f'{stat}_p50'), template)} / {_number(row.get(f'{stat}_p90'), template)}"


def _plain(value: object) -> str:
    if is_missing(value):
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
