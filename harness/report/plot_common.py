"""Figure helpers shared by the report's plots: PNG output, colours, load axes, validity markers.

Figures are built with matplotlib.figure.Figure rather than pyplot, so that no global
backend is chosen and nothing needs a display: savefig renders with Agg.
"""

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

DPI = 100
COLORS = [f"C{index}" for index in range(10)]


def new_figure(width_in: float, height_in: float) -> Figure:
    return Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")


def png_bytes(figure: Figure) -> bytes:
    """Render a figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def color(index: int) -> str:
    return COLORS[index % len(COLORS)]


def set_load_scale(axes: Axes, loads: Sequence[float]) -> None:
    """Use a base-2 log x scale when the loads are positive and span a factor of 4 or more.

    Concurrency levels usually double (1, 2, 4, ... 256), and a linear axis would crowd
    the low levels into one corner. On a linear axis, a dozen levels or fewer get one
    tick each.
    """
    finite = sorted({load for load in loads if np.isfinite(load)})
    if finite and min(finite) > 0 and max(finite) / min(finite) >= 4:
        axes.set_xscale("log", base=2)
        axes.xaxis.set_major_formatter("{x:g}")
    elif 0 < len(finite) <= 12:
        # A few levels read best with one tick each, and concurrency 1.5 does not exist.
        axes.set_xticks(finite)
        axes.xaxis.set_major_formatter("{x:g}")


def plot_levels(
    axes: Axes,
    xs: Sequence[float],
    ys: Sequence[float],
    valid: Sequence[bool],
    label: str,
    color_name: str,
    linestyle: str = "-",
    marker: str = "o",
) -> None:
    """Draw a line through every level, with filled markers on valid levels and hollow ones on invalid.

    Levels with a NaN value leave a gap in the line.
    """
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    ok = np.asarray(valid, dtype=bool)
    axes.plot(x, y, linestyle=linestyle, color=color_name, label=label)
    axes.plot(x[ok], y[ok], linestyle="none", marker=marker, color=color_name)
    axes.plot(
        x[~ok], y[~ok], linestyle="none", marker=marker, markerfacecolor="white", color=color_name,
    )


def small_legend(axes: Axes, max_entries: int = 12) -> None:
    """Add a legend when it would list at most max_entries lines, because a crowded legend hides the plot."""
    handles, labels = axes.get_legend_handles_labels()
    if 0 < len(labels) <= max_entries:
        axes.legend(handles, labels, fontsize="small")
