"""Section 1 figure: each pool's delivered token rate and requests/s against its capacity."""

import math

from matplotlib.figure import Figure

from harness.report.plot_common import new_figure, plot_levels, set_load_scale
from harness.report.ratematch import RateMatch, RateMatchLevel

PREFILL_COLOR = "C0"
DECODE_COLOR = "C1"
CLIENT_COLOR = "black"


def rate_match_figure(result: RateMatch, isl: int, osl: int, load_label: str, title: str) -> Figure:
    """Plot each pool's tokens/s (left, middle) and all rates in requests/s (right) against load.

    Solid lines come from the workers' counters, dashed lines from the client's
    summary, and dotted lines are capacities. Hollow markers are invalid levels.
    """
    levels = result.levels
    loads = [level.load for level in levels]
    valid = [level.valid for level in levels]

    figure = new_figure(15, 5.5)
    prefill_axes, decode_axes, requests_axes = figure.subplots(1, 3)
    figure.suptitle(title, fontsize="medium")

    plot_levels(prefill_axes, loads, _values(levels, "prefill_input_tps"), valid,
                "prefill workers' counters", PREFILL_COLOR)
    plot_levels(prefill_axes, loads, _values(levels, "client_input_tps"), valid,
                "client", PREFILL_COLOR, linestyle="--", marker="s")
    prefill_axes.set_ylabel("prefill pool input tokens/s\n(prompt tokens, pool total)")

    plot_levels(decode_axes, loads, _values(levels, "decode_output_tps"), valid,
                "decode workers' counters", DECODE_COLOR)
    plot_levels(decode_axes, loads, _values(levels, "client_output_tps"), valid,
                "client", DECODE_COLOR, linestyle="--", marker="s")
    decode_axes.set_ylabel("decode pool output tokens/s\n(generated tokens, pool total)")

    # The same rates in requests/s, beside the client's request rate and the capacities.
    plot_levels(requests_axes, loads, _values(levels, "achieved_rps"), valid,
                "achieved request rate (client)", CLIENT_COLOR)
    plot_levels(requests_axes, loads, _values(levels, "prefill_input_rps"), valid,
                f"prefill pool: prompt tokens/s / ISL {isl}", PREFILL_COLOR)
    plot_levels(requests_axes, loads, _values(levels, "client_input_rps"), valid,
                f"client: prompt tokens/s / ISL {isl}", PREFILL_COLOR, linestyle="--", marker="s")
    plot_levels(requests_axes, loads, _values(levels, "decode_output_rps"), valid,
                f"decode pool: generated tokens/s / OSL {osl}", DECODE_COLOR)
    plot_levels(requests_axes, loads, _values(levels, "client_output_rps"), valid,
                f"client: generated tokens/s / OSL {osl}", DECODE_COLOR, linestyle="--", marker="s")
    _plot_capacity(requests_axes, levels, "prefill", PREFILL_COLOR, "^")
    _plot_capacity(requests_axes, levels, "decode", DECODE_COLOR, "v")
    requests_axes.set_ylabel("requests/s")

    for axes in (prefill_axes, decode_axes, requests_axes):
        axes.set_xlabel(load_label)
        axes.set_ylim(bottom=0)
        set_load_scale(axes, loads)
        axes.grid(alpha=0.3)
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), fontsize="small")
    return figure


def _plot_capacity(axes, levels: tuple[RateMatchLevel, ...], role: str, color_name: str, marker: str) -> None:
    capacities = _values(levels, f"{role}_capacity_rps")
    if all(math.isnan(value) for value in capacities):
        return
    sources = sorted({
        source.value for level in levels
        if (source := getattr(level, f"{role}_capacity_source")) is not None
    })
    plot_levels(axes, [level.load for level in levels], capacities, [level.valid for level in levels],
                f"{role} pool capacity ({', '.join(sources)})", color_name, linestyle=":", marker=marker)


def _values(levels: tuple[RateMatchLevel, ...], field: str) -> list[float]:
    values = []
    for level in levels:
        value = getattr(level, field)
        values.append(math.nan if value is None else float(value))
    return values
