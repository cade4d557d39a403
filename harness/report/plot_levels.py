"""Sections 3 and 4: latency and throughput against load, and the throughput-interactivity frontier."""

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.figure import Figure

from harness.report.pareto import pareto_frontier
from harness.report.plot_common import color, new_figure, plot_levels, set_load_scale
from harness.report.points import ReportPoint, is_open_loop, is_valid, level_load, load_axis_label, number

OUTPUT_PER_GPU_LABEL = "output tokens/s per GPU (generated tokens)"
PER_USER_LABEL = "output tokens/s per user (1000 / mean TPOT ms)"
LEGEND_LABEL_CHARS = 90


@dataclass(frozen=True)
class FrontierLevel:
    """A level on the Pareto frontier of output tok/s per GPU against tok/s per user."""

    point_label: str
    level: str
    tps_per_user: float
    tps_per_gpu: float


def load_figure(points: Sequence[ReportPoint], open_loop: bool) -> Figure | None:
    """Plot TTFT and ITL (p50 solid, p90 dashed) and output tok/s per GPU against load, one colour per point.

    Only the levels of the given loop kind are drawn. Returns None when no point has one.
    """
    selected = []
    for index, point in enumerate(points):
        rows = point.levels[point.levels.apply(is_open_loop, axis=1) == open_loop]
        if not rows.empty:
            selected.append((index, point, rows))
    if not selected:
        return None

    figure = new_figure(14, 4.5 + 0.25 * len(selected))
    ttft_axes, itl_axes, throughput_axes = figure.subplots(1, 3)
    all_loads = []
    for index, point, rows in selected:
        loads = [level_load(row) for _, row in rows.iterrows()]
        valid = [is_valid(row) for _, row in rows.iterrows()]
        all_loads.extend(loads)
        point_color = color(index)
        for axes, stat in ((ttft_axes, "ttft_ms"), (itl_axes, "itl_ms")):
            plot_levels(axes, loads, _column(rows, f"{stat}_p50"), valid, f"{point.label} p50", point_color)
            plot_levels(axes, loads, _column(rows, f"{stat}_p90"), valid, f"{point.label} p90",
                        point_color, linestyle="--")
        plot_levels(throughput_axes, loads, _column(rows, "output_throughput_tps_per_gpu"), valid,
                    point.label, point_color)

    ttft_axes.set_ylabel("TTFT ms (p50 solid, p90 dashed)")
    itl_axes.set_ylabel("ITL ms (p50 solid, p90 dashed)")
    throughput_axes.set_ylabel(OUTPUT_PER_GPU_LABEL)
    for axes in (ttft_axes, itl_axes, throughput_axes):
        axes.set_xlabel(load_axis_label(open_loop))
        axes.set_ylim(bottom=0)
        set_load_scale(axes, all_loads)
        axes.grid(alpha=0.3)
    handles, labels = throughput_axes.get_legend_handles_labels()
    figure.legend(handles, [_wrap(label) for label in labels], loc="outside lower center", fontsize="small")
    return figure


def frontier_levels(points: Sequence[ReportPoint]) -> list[FrontierLevel]:
    """Return the valid levels of aggregated and disaggregated points on the Pareto frontier.

    Isolated prefill and decode runs are left out: each measures one phase with a
    workload shaped for it, so its tok/s per GPU does not compare with full serving.
    """
    candidates = []
    for point in points:
        if point.isolated:
            continue
        for _, row in point.levels.iterrows():
            x = number(row, "interactivity_tps_per_user")
            y = number(row, "output_throughput_tps_per_gpu")
            if is_valid(row) and math.isfinite(x) and math.isfinite(y):
                candidates.append(FrontierLevel(point.label, str(row["level"]), x, y))
    indices = pareto_frontier([level.tps_per_user for level in candidates],
                              [level.tps_per_gpu for level in candidates])
    return [candidates[index] for index in indices]


def pareto_figure(points: Sequence[ReportPoint], frontier: Sequence[FrontierLevel]) -> Figure | None:
    """Plot output tok/s per GPU against tok/s per user, one curve per point, and the frontier.

    Isolated runs are drawn dashed and are not part of the frontier. Returns None when
    no level has both values.
    """
    figure = new_figure(10, 7)
    axes = figure.subplots()
    drawn = 0
    for index, point in enumerate(points):
        rows = point.levels
        xs = _column(rows, "interactivity_tps_per_user")
        ys = _column(rows, "output_throughput_tps_per_gpu")
        if not any(math.isfinite(x) and math.isfinite(y) for x, y in zip(xs, ys)):
            continue
        valid = [is_valid(row) for _, row in rows.iterrows()]
        label = f"{point.label} (isolated {point.mode}, not in frontier)" if point.isolated else point.label
        plot_levels(axes, xs, ys, valid, label, color(index), linestyle="--" if point.isolated else "-")
        drawn += 1
    if drawn == 0:
        return None

    if frontier:
        axes.plot([level.tps_per_user for level in frontier], [level.tps_per_gpu for level in frontier],
                  color="grey", linewidth=6, marker="o", markersize=14, alpha=0.35, zorder=0,
                  label="Pareto frontier (valid levels)")
    axes.set_xlabel(PER_USER_LABEL)
    axes.set_ylabel(OUTPUT_PER_GPU_LABEL)
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    handles, labels = axes.get_legend_handles_labels()
    figure.legend(handles, [_wrap(label) for label in labels], loc="outside lower center", fontsize="small")
    return figure


def _wrap(label: str) -> str:
    # A legend below the axes is cut at the figure's edge, so long labels get more lines.
    return "\n".join(textwrap.wrap(label, width=LEGEND_LABEL_CHARS))


def _column(rows, column: str) -> list[float]:
    return [number(row, column) for _, row in rows.iterrows()]
