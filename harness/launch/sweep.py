"""The `harness sweep` command: plan, print, skip measured points, submit, summarize."""

import logging
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.config.derived import effective_lengths
from harness.launch.dry_run import print_dry_run
from harness.launch.plan import Point, SweepPlan, plan_sweep
from harness.launch.submit import find_measured, new_sweep_dir, run_points, write_sweep_files
from harness.launch.topology import gpus_per_worker
from harness.results.collect import collect
from harness.results.table import print_results_table

logger = logging.getLogger(__name__)


def sweep_command(overrides: list[str], dry_run: bool, force: bool, console: Console) -> int:
    """Run a sweep; return 0 when every point is done or skipped, 1 when one failed."""
    plan = plan_sweep(overrides)
    console.print(plan_table(plan))

    if dry_run:
        print_dry_run(plan.points, console)
        console.print("dry run: nothing submitted")
        return 0

    results_dir = Path(plan.points[0].cfg.results_dir) if plan.points else Path("results")
    to_run: list[Point] = []
    for point in plan.points:
        measured = None if force else find_measured(results_dir, plan.experiment, point.point_id)
        if measured is not None:
            console.print(f"skip {point.point_id}: already measured in {measured} (--force measures it again)")
        else:
            to_run.append(point)
    if not to_run:
        console.print("every point is already measured; nothing to run")
        return 0

    sweep_dir = new_sweep_dir(results_dir, plan.experiment)
    write_sweep_files(sweep_dir, plan, to_run)
    logger.info("sweep %s: %d points to run in %s", plan.experiment, len(to_run), sweep_dir)
    outcomes = run_points(sweep_dir, to_run, console)

    table = Table(title=f"sweep {plan.experiment}: {sweep_dir}")
    for column in ("point", "state", "error"):
        table.add_column(column, overflow="fold")
    for outcome in outcomes:
        table.add_row(outcome.point.point_id, outcome.state, outcome.error or "")
    console.print(table)
    if any(outcome.state == "done" for outcome in outcomes):
        print_results_table(collect([sweep_dir]), console)
    console.print(f"results: {sweep_dir}\nnext: python -m harness collect {sweep_dir}")
    return 0 if all(outcome.state == "done" for outcome in outcomes) else 1


def plan_table(plan: SweepPlan) -> Table:
    table = Table(title=f"plan: {plan.experiment}, {len(plan.points)} points")
    table.add_column("point")
    for axis in plan.axes:
        table.add_column(axis.lstrip("+"))
    for column in ("mode", "parallelism", "ISL", "OSL", "workers", "GPUs/worker", "GPUs", "nodes"):
        table.add_column(column, justify="right")
    for point in plan.points:
        cfg = point.cfg
        isl, osl = effective_lengths(cfg)
        table.add_row(
            point.point_id,
            *[point.swept[axis] for axis in plan.axes],
            cfg.mode.name.value,
            point.composed.choices.get("parallelism", "custom"),
            str(isl),
            str(osl),
            str(len(point.topology.workers)),
            str(gpus_per_worker(cfg.parallelism)),
            str(point.topology.num_gpus),
            str(point.topology.num_nodes),
        )
    return table

