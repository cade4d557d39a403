"""Section 2 figure: prefill queue depth and decode running batch over one level's time."""

import pandas as pd
from matplotlib.figure import Figure

from harness.report.plot_common import color, new_figure, small_legend
from harness.report.server_metrics import gauge_series, role_rows

# Roles whose queue depth and running batch are plotted, first match wins. A point
# without prefill or decode workers has one aggregated worker that does both.
QUEUE_ROLES = ("prefill", "aggregated")
RUNNING_ROLES = ("decode", "aggregated")


def series_roles(frame: pd.DataFrame) -> tuple[str | None, str | None]:
    """Return the role whose queue depth and the role whose running batch a point's plots show."""
    return _first_present(frame, QUEUE_ROLES), _first_present(frame, RUNNING_ROLES)


def level_timeseries_figure(level_frame: pd.DataFrame, level: str, queue_role: str | None,
                            running_role: str | None) -> Figure | None:
    """Plot one level's queue depth (top) and running batch (bottom), one line per worker.

    Returns None when the level has neither series.
    """
    queue = {} if queue_role is None else gauge_series(level_frame, "queue_depth", queue_role)
    running = {} if running_role is None else gauge_series(level_frame, "running_requests", running_role)
    if not queue and not running:
        return None

    figure = new_figure(5.5, 4.5)
    queue_axes, running_axes = figure.subplots(2, 1, sharex=True)
    figure.suptitle(f"level {level}", fontsize="medium")
    _plot_workers(queue_axes, queue, f"{queue_role} queue depth\n(requests waiting)")
    _plot_workers(running_axes, running, f"{running_role} running batch\n(requests running)")
    running_axes.set_xlabel("seconds since the level's first scrape")
    return figure


def _plot_workers(axes, series: dict[str, pd.DataFrame], ylabel: str) -> None:
    for index, (worker, samples) in enumerate(series.items()):
        axes.plot(samples["time_s"], samples["value"], marker=".", color=color(index), label=worker)
    if not series:
        axes.text(0.5, 0.5, "not sampled", transform=axes.transAxes, ha="center", va="center")
    axes.set_ylabel(ylabel, fontsize="small")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    small_legend(axes, max_entries=8)


def _first_present(frame: pd.DataFrame, roles: tuple[str, ...]) -> str | None:
    for role in roles:
        if not role_rows(frame, role).empty:
            return role
    return None
