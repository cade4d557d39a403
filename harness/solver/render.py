"""Print a solver result with rich: the configs chosen, the ratio and the xPyD options."""

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from harness.solver.capacity import ROLE_SPECS, RoleCapacity

if TYPE_CHECKING:
    from harness.solver import SolverResult


def render_solution(result: "SolverResult", console: Console) -> None:
    """Print the workload and SLOs, each config's capacity, the ratio and the options."""
    console.print(_describe_targets(result))
    console.print(_capacity_table(result))
    for capacity in (result.prefill, result.decode):
        console.print(_describe_skipped(capacity))
    if result.rows_superseded:
        console.print(f"{result.rows_superseded} rows of older sweeps were replaced by newer ones")

    prefill, decode = result.prefill.best, result.decode.best
    console.print(
        f"requests/s per server: prefill {prefill.requests_per_s:,.2f} ({prefill.point_id}), "
        f"decode {decode.requests_per_s:,.2f} ({decode.point_id})"
    )
    console.print(
        f"prefill servers per decode server: {result.ratio:.4f} "
        f"(= {decode.requests_per_s:,.2f} / {prefill.requests_per_s:,.2f})"
    )
    console.print(_options_table(result))
    console.print("a multiple kxPkyD of an option has the same tok/s per GPU at k times its requests/s")

    measured_isl = result.decode_measured_isl
    if measured_isl is not None and measured_isl < result.isl:
        console.print(
            f"warning: the decode capacity was measured at ISL {measured_isl}, below the target "
            f"ISL {result.isl}; each decode step then reads less KV context than in service, so "
            f"decode capacity and the ratio above are likely overstated. Measure decode at the "
            f"target context with mode.isl={result.isl}.",
            style="yellow", highlight=False,
        )


def _describe_targets(result: "SolverResult") -> str:
    percentile = f"p{result.percentile}"
    ttft = "no limit" if result.slo_ttft_ms is None else f"<= {result.slo_ttft_ms:g} ms"
    itl = "no limit" if result.slo_itl_ms is None else f"<= {result.slo_itl_ms:g} ms"
    return (
        f"ISL {result.isl}, OSL {result.osl}; SLO TTFT {percentile} {ttft}, "
        f"ITL {percentile} {itl}; GPU budget {result.gpu_budget}"
    )


def _capacity_table(result: "SolverResult") -> Table:
    table = Table(title="capacity per config within the SLO, best of each role first")
    for header, justify in (
        ("role", "left"),
        ("point", "left"),
        ("parallelism", "left"),
        ("GPUs/server", "right"),
        ("level", "left"),
        ("throughput", "right"),
        (f"latency p{result.percentile}", "right"),
        ("requests/s per server", "right"),
    ):
        table.add_column(header, justify=justify)

    for capacity in (result.prefill, result.decode):
        spec = ROLE_SPECS[capacity.role]
        for rank, point in enumerate(capacity.points):
            table.add_row(
                capacity.role.value if rank == 0 else "",
                point.point_id,
                point.parallelism,
                str(point.gpus_per_worker),
                point.level,
                f"{point.tps_per_gpu:,.0f} {spec.throughput_label}",
                f"{spec.latency_label} {point.latency_ms:,.2f} ms",
                f"{point.requests_per_s:,.2f}",
            )
    return table


def _describe_skipped(capacity: RoleCapacity) -> str:
    return (
        f"{capacity.role.value}: {capacity.levels_total} levels at "
        f"{ROLE_SPECS[capacity.role].length_label} {capacity.tokens_per_request}, "
        f"{capacity.levels_invalid} invalid (skipped), "
        f"{capacity.levels_without_completions} with no completed request, "
        f"{capacity.levels_over_slo} over the SLO"
    )


def _options_table(result: "SolverResult") -> Table:
    table = Table(title=f"xPyD options within {result.gpu_budget} GPUs, best first")
    table.add_column("xPyD")
    table.add_column("GPUs", justify="right")
    table.add_column("requests/s", justify="right")
    table.add_column("output tok/s per GPU (whole deployment)", justify="right")
    table.add_column("bottleneck")
    for option in result.options:
        table.add_row(
            option.label,
            str(option.gpus),
            f"{option.requests_per_s:,.2f}",
            f"{option.output_tps_per_gpu:,.1f}",
            option.bottleneck,
        )
    return table
