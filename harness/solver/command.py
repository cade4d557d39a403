"""The `harness solve` command: read the results table and print the xPyD recommendation."""

from pathlib import Path

from rich.console import Console

from harness.config.compose import compose_config
from harness.config.overrides import override_key
from harness.results.collect import load_table
from harness.solver import render_solution, solve


def solve_command(args: list[str], console: Console) -> int:
    """Solve from result folders or tables; `key=value` arguments are config overrides.

    The SLOs come from bench.slo.*, the budget from solver.*; ISL and OSL are taken from
    the measured rows unless workload.isl or workload.osl is given.
    """
    overrides = [arg for arg in args if "=" in arg]
    paths = [arg for arg in args if "=" not in arg]
    cfg = compose_config(overrides).cfg
    given = {override_key(item) for item in overrides}

    table = load_table([Path(path) for path in paths] or [Path(cfg.results_dir)])
    result = solve(
        table,
        slo_ttft_ms=cfg.bench.slo.ttft_ms,
        slo_itl_ms=cfg.bench.slo.itl_ms,
        percentile=cfg.bench.slo.percentile,
        isl=cfg.workload.isl if "workload.isl" in given else None,
        osl=cfg.workload.osl if "workload.osl" in given else None,
        gpu_budget=cfg.solver.gpu_budget,
        max_options=cfg.solver.max_options,
    )
    render_solution(result, console)
    return 0
