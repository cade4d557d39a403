"""The `harness sweep` command: plan, print, skip measured points, submit, summarize."""

import logging
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.config.derived import effective_lengths, role_parallelism
from harness.config.schema import ModeName
from harness.launch.dry_run import print_dry_run
from harness.launch.plan import Point, SweepPlan, plan_sweep
from harness.launch.submit import find_measured, new_sweep_dir, run_points, write_sweep_files
from harness.launch.topology import Role, gpus_per_worker
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
    fixed_columns = ("mode", "parallelism", "workers", "GPUs/worker", "ISL", "OSL", "GPUs", "nodes")
    # An axis that a fixed column already shows (parallelism=tp8,dep8) gets no column of its own.
    axes = [axis for axis in plan.axes if axis.lstrip("+") not in fixed_columns]
    table.add_column("point")
    for axis in axes:
        table.add_column(axis.lstrip("+"))
    for column in fixed_columns:
        table.add_column(column, justify="right")
    for point in plan.points:
        cfg = point.cfg
        isl, osl = effective_lengths(cfg)
        table.add_row(
            point.point_id,
            *[point.swept[axis] for axis in axes],
            cfg.mode.name.value,
            *_worker_columns(point),
            str(isl),
            str(osl),
            str(point.topology.num_gpus),
            str(point.topology.num_nodes),
        )
    return table


def _worker_columns(point: Point) -> tuple[str, str, str]:
    """Return the parallelism, workers and GPUs/worker cells; disagg shows prefill / decode."""
    cfg, choices = point.cfg, point.composed.choices
    if cfg.mode.name != ModeName.disagg:
        return choices.get("parallelism", "custom"), "1", str(gpus_per_worker(cfg.parallelism))

    names, gpus = [], []
    for role in (Role.prefill, Role.decode):
        default = choices.get("parallelism", "custom")
        names.append(choices.get(f"parallelism@mode.{role.value}_parallelism", default))
        gpus.append(str(gpus_per_worker(role_parallelism(cfg, role.value))))
    workers = f"{cfg.mode.prefill_workers}P{cfg.mode.decode_workers}D"
    return " / ".join(names), workers, " / ".join(gpus)
