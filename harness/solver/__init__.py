"""Rate-matching solver: how many prefill servers per decode server, and which xPyD.

solve() reads the collected results table, finds the capacity of every prefill and
decode config within the SLOs, takes the best of each side, and enumerates integer
xPyD deployments within a GPU budget.
"""

import logging
from dataclasses import dataclass

import pandas as pd

from harness.errors import ConfigError, SolverError
from harness.solver.capacity import (
    ROLE_SPECS,
    PointCapacity,
    Role,
    RoleCapacity,
    latest_rows,
    role_capacity,
    select_role_rows,
)
from harness.solver.render import render_solution
from harness.solver.xpyd import XpydOption, enumerate_xpyd, prefill_per_decode_ratio

logger = logging.getLogger(__name__)

PERCENTILES = (50, 90, 95, 99)

__all__ = [
    "PointCapacity",
    "Role",
    "RoleCapacity",
    "SolverResult",
    "XpydOption",
    "render_solution",
    "solve",
]


@dataclass(frozen=True)
class SolverResult:
    """The solver's inputs, both sides' capacities, the fractional ratio and the xPyD options.

    ratio is prefill servers per decode server (decode rps / prefill rps of the best
    configs). Options are ranked best first by output tok/s per GPU of the deployment.
    """

    percentile: int
    slo_ttft_ms: float | None
    slo_itl_ms: float | None
    isl: int
    osl: int
    gpu_budget: int
    prefill: RoleCapacity
    decode: RoleCapacity
    ratio: float
    options: tuple[XpydOption, ...]
    rows_superseded: int
    # Context length of the decode point's requests (its ISL): decode step cost grows with
    # the context that each step reads, so a decode point measured far below the target
    # ISL overstates decode capacity.
    decode_measured_isl: int | None = None


def solve(
    table: pd.DataFrame,
    slo_ttft_ms: float | None,
    slo_itl_ms: float | None,
    percentile: int,
    isl: int | None,
    osl: int | None,
    gpu_budget: int,
    max_options: int,
) -> SolverResult:
    """Match prefill to decode capacity and rank the xPyD deployments within gpu_budget.

    isl and osl None take the target ISL of the prefill rows and the target OSL of the
    decode rows. Raises ConfigError for an invalid argument. Raises SolverError when
    the table has no prefill or decode row, rows at several lengths, no level within
    an SLO, or when the budget is below 1P1D.
    """
    _check_arguments(slo_ttft_ms, slo_itl_ms, percentile, isl, osl, gpu_budget, max_options)
    _check_columns(table, percentile)

    # A point re-measured in a later sweep replaces its earlier rows.
    latest = latest_rows(table)
    rows_superseded = len(table) - len(latest)
    if rows_superseded:
        logger.info("using the newest sweep of each point; %d older rows ignored", rows_superseded)

    prefill_rows, isl = select_role_rows(latest, Role.prefill, isl)
    decode_rows, osl = select_role_rows(latest, Role.decode, osl)
    prefill = role_capacity(prefill_rows, Role.prefill, slo_ttft_ms, percentile, isl)
    decode = role_capacity(decode_rows, Role.decode, slo_itl_ms, percentile, osl)
    ratio = prefill_per_decode_ratio(prefill.best.requests_per_s, decode.best.requests_per_s)

    options = enumerate_xpyd(
        prefill_rps=prefill.best.requests_per_s,
        decode_rps=decode.best.requests_per_s,
        prefill_gpus=prefill.best.gpus_per_worker,
        decode_gpus=decode.best.gpus_per_worker,
        osl=osl,
        gpu_budget=gpu_budget,
        max_options=max_options,
    )
    if not options:
        minimum_gpus = prefill.best.gpus_per_worker + decode.best.gpus_per_worker
        raise SolverError(
            f"solver.gpu_budget={gpu_budget} is below the {minimum_gpus} GPUs of 1P1D "
            f"({prefill.best.gpus_per_worker} prefill + {decode.best.gpus_per_worker} decode); "
            f"set solver.gpu_budget to at least {minimum_gpus}"
        )

    return SolverResult(
        percentile=percentile,
        slo_ttft_ms=slo_ttft_ms,
        slo_itl_ms=slo_itl_ms,
        isl=isl,
        osl=osl,
        gpu_budget=gpu_budget,
        prefill=prefill,
        decode=decode,
        ratio=ratio,
        options=tuple(options),
        rows_superseded=rows_superseded,
        decode_measured_isl=_measured_isl(decode_rows, decode.best.point_id),
    )


def _measured_isl(rows: pd.DataFrame, point_id: str) -> int | None:
    if "target_isl" not in rows.columns:
        return None
    values = rows.loc[rows["point_id"] == point_id, "target_isl"].dropna().unique()
    return int(values[0]) if len(values) == 1 else None


def _check_arguments(
    slo_ttft_ms: float | None,
    slo_itl_ms: float | None,
    percentile: int,
    isl: int | None,
    osl: int | None,
    gpu_budget: int,
    max_options: int,
) -> None:
    if percentile not in PERCENTILES:
        raise ConfigError(
            f"bench.slo.percentile={percentile} is invalid; use one of "
            f"{', '.join(map(str, PERCENTILES))}"
        )
    for key, slo in (("bench.slo.ttft_ms", slo_ttft_ms), ("bench.slo.itl_ms", slo_itl_ms)):
        if slo is not None and not slo > 0:
            raise ConfigError(f"{key}={slo} is invalid; use a positive number or null for no limit")
    for key, length in (("workload.isl", isl), ("workload.osl", osl)):
        if length is not None and length < 1:
            raise ConfigError(f"{key}={length} is invalid; use a positive number of tokens")
    if gpu_budget < 1:
        raise ConfigError(f"solver.gpu_budget={gpu_budget} is invalid; use a positive GPU count")
    if max_options < 1:
        raise ConfigError(f"solver.max_options={max_options} is invalid; use 1 or more")


def _check_columns(table: pd.DataFrame, percentile: int) -> None:
    required = {"point_id", "sweep", "level", "mode.name", "valid", "completed", "gpus_per_worker"}
    for spec in ROLE_SPECS.values():
        latency_column = f"{spec.latency_stat}_p{percentile}"
        required |= {spec.throughput_column, latency_column, spec.length_column}
    missing = sorted(required - set(table.columns))
    if table.empty:
        raise SolverError(
            "the results table is empty; collect results of prefill and decode points first"
        )
    if missing:
        raise SolverError(
            f"the results table has no column {', '.join(missing)}; re-create it with "
            "`harness collect` from results written by this version of harness"
        )

