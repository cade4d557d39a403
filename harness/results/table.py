"""Compact rich table of a collected results frame, one line per (point, level)."""

from typing import Any

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

# Config keys whose differences between points are shown as the point's swept args.
SWEPT_PREFIXES = ("engine.name", "engine.args.", "model.path", "workload.")


def parallelism_label(tp: int, dp: int, ep: int, pp: int, dp_attention: bool) -> str:
    """Name a parallelism as the field does: DEP8, TEP8, TP8, or its sizes ("TP2 DP4-attn EP8")."""
    if pp == 1 and tp == 1 and dp > 1 and dp_attention and ep == dp:
        return f"DEP{dp}"
    if pp == 1 and dp == 1 and tp > 1 and ep == tp:
        return f"TEP{tp}"
    parts = [f"TP{tp}"] if tp > 1 or dp == ep == pp == 1 else []
    if dp > 1:
        parts.append(f"DP{dp}-attn" if dp_attention else f"DP{dp}")
    parts.extend(f"{name}{size}" for name, size in (("EP", ep), ("PP", pp)) if size > 1)
    return " ".join(parts)


def row_parallelism_label(row: pd.Series) -> str:
    """Name the parallelism of one table row from its parallelism.* columns.

    A disaggregated row whose pools set their own parallelism (mode.prefill_parallelism.*,
    mode.decode_parallelism.*) gets "prefill / decode", e.g. "DEP8 / DEP48".
    """
    pools = [f"mode.{role}_parallelism." for role in ("prefill", "decode")]
    if any(not is_missing(row.get(prefix + "tp")) for prefix in pools):
        return " / ".join(
            _label_from(row, prefix if not is_missing(row.get(prefix + "tp")) else "parallelism.")
            for prefix in pools
        )
    return _label_from(row, "parallelism.")


def _label_from(row: pd.Series, prefix: str) -> str:
    sizes = [_int_or_one(row.get(f"{prefix}{name}")) for name in ("tp", "dp", "ep", "pp")]
    dp_attention = row.get(f"{prefix}dp_attention")
    dp_attention = not is_missing(dp_attention) and bool(dp_attention)
    return parallelism_label(*sizes, dp_attention=dp_attention)


def swept_columns(frame: pd.DataFrame) -> list[str]:
    """Return the engine, model and workload config columns whose value differs between points."""
    columns = []
    for column in frame.columns:
        if not column.startswith(SWEPT_PREFIXES):
            continue
        per_point = frame.drop_duplicates("point_id")[column]
        if per_point.astype(str).nunique(dropna=False) > 1:
            columns.append(column)
    return columns


def build_results_table(frame: pd.DataFrame) -> Table:
    """Build the table: point, mode, parallelism, swept args, level, counts, throughput, latency.

    The flags of invalid levels go into the caption, because they are too long for a cell.
    """
    table = Table(title="collected levels", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("point", no_wrap=True)
    table.add_column("mode", no_wrap=True)
    table.add_column("parallelism", min_width=4)
    table.add_column("swept args", min_width=4, overflow="fold")
    # The ISL and OSL that the requests used, which isolated modes set apart from workload.*.
    table.add_column("ISL/OSL", justify="right", no_wrap=True)
    table.add_column("level", no_wrap=True)
    table.add_column("ok/\nfailed", justify="right", no_wrap=True)
    table.add_column("input\ntok/s/GPU", justify="right", no_wrap=True)
    table.add_column("output\ntok/s/GPU", justify="right", no_wrap=True)
    table.add_column("TTFT ms\np50/p90", justify="right", no_wrap=True)
    table.add_column("ITL ms\np50/p90", justify="right", no_wrap=True)
    table.add_column("valid", no_wrap=True)

    if frame.empty:
        table.caption = "no measured level found"
        return table

    swept = swept_columns(frame)
    flag_lines = []
    for _, row in frame.iterrows():
        swept_text = " ".join(
            f"{_short_key(column)}={_text(row.get(column))}"
            for column in swept
            if not is_missing(row.get(column))
        )
        valid = _valid_text(row.get("valid"))
        if valid == "no":
            flags = _text(row.get("flags"))
            flag_lines.append(f"{row['point_id']} {row['level']} invalid: {flags}")
        table.add_row(
            str(row["point_id"]),
            _text(row.get("mode.name")),
            row_parallelism_label(row),
            swept_text,
            f"{_count(row.get('target_isl'))}/{_count(row.get('target_osl'))}",
            str(row["level"]),
            f"{_count(row.get('completed'))}/{_count(row.get('failed'))}",
            _number(row.get("input_throughput_tps_per_gpu"), "{:,.0f}"),
            _number(row.get("output_throughput_tps_per_gpu"), "{:,.0f}"),
            _pair(row, "ttft_ms", "{:,.1f}"),
            _pair(row, "itl_ms", "{:,.2f}"),
            valid,
        )

    if flag_lines:
        table.caption = "\n".join(flag_lines)
        table.caption_justify = "left"
    return table


def print_results_table(frame: pd.DataFrame, console: Console) -> None:
    """Print the results table no narrower than its columns' longest words.

    Rich squeezes a table that is wider than the console until whole columns vanish,
    so a narrow terminal gets wider lines, which it wraps, rather than missing columns.
    """
    table = build_results_table(frame)
    unlimited = console.options.update_width(1_000_000)
    minimum_width = console.measure(table, options=unlimited).minimum
    if minimum_width > console.width:
        table.width = minimum_width
    console.print(table, crop=False)


def _short_key(column: str) -> str:
    return column.removeprefix("engine.args.")


def is_missing(value: Any) -> bool:
    """Return whether a table cell is missing: None, NaN or pd.NA, depending on the dtype."""
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def _int_or_one(value: Any) -> int:
    return 1 if is_missing(value) else int(value)


def _text(value: Any) -> str:
    if is_missing(value):
        return "-"
    # A config column with missing cells is float, so 8192 reads back as 8192.0.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _count(value: Any) -> str:
    return "-" if is_missing(value) else str(int(value))


def _number(value: Any, template: str) -> str:
    return "-" if is_missing(value) else template.format(float(value))


def _pair(row: pd.Series, stat: str, template: str) -> str:
    p50 = _number(row.get(f"{stat}_p50"), template)
    p90 = _number(row.get(f"{stat}_p90"), template)
    return f"{p50}/{p90}"


def _valid_text(valid: Any) -> str:
    if is_missing(valid):
        return "?"
    return "yes" if bool(valid) else "no"
