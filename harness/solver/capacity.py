"""Capacity of each measured prefill or decode config: its best level within the SLO.

A prefill server's capacity is the max input tok/s/GPU among its valid levels whose
TTFT percentile meets the SLO. In requests/s per server that is
tok/s/GPU * GPUs per worker / ISL. A decode server's capacity uses output tok/s/GPU,
the ITL percentile and the OSL instead.
"""

from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import SolverError
from harness.results.table import row_parallelism_label


class Role(str, Enum):
    prefill = "prefill"
    decode = "decode"


@dataclass(frozen=True)
class RoleSpec:
    """Table columns and config keys that measure one role."""

    throughput_column: str
    throughput_label: str
    latency_stat: str
    latency_label: str
    slo_key: str
    length_column: str
    length_label: str
    length_key: str


ROLE_SPECS = {
    Role.prefill: RoleSpec(
        throughput_column="input_throughput_tps_per_gpu",
        throughput_label="input tok/s/GPU",
        latency_stat="ttft_ms",
        latency_label="TTFT",
        slo_key="bench.slo.ttft_ms",
        length_column="target_isl",
        length_label="ISL",
        length_key="workload.isl",
    ),
    Role.decode: RoleSpec(
        throughput_column="output_throughput_tps_per_gpu",
        throughput_label="output tok/s/GPU",
        latency_stat="itl_ms",
        latency_label="ITL",
        slo_key="bench.slo.itl_ms",
        length_column="target_osl",
        length_label="OSL",
        length_key="workload.osl",
    ),
}

EXAMPLE_EXPERIMENTS = {Role.prefill: "prefill_dep8", Role.decode: "decode_dep48"}


@dataclass(frozen=True)
class PointCapacity:
    """One server config's best level within the SLO and its requests/s per server."""

    role: Role
    point_id: str
    experiment: str
    sweep: str
    parallelism: str
    gpus_per_worker: int
    level: str
    tps_per_gpu: float
    latency_ms: float
    requests_per_s: float


@dataclass(frozen=True)
class RoleCapacity:
    """Capacities of every config of one role, best first, and the levels left out."""

    role: Role
    tokens_per_request: int
    points: tuple[PointCapacity, ...]
    levels_total: int
    levels_invalid: int
    levels_without_completions: int
    levels_over_slo: int

    @property
    def best(self) -> PointCapacity:
        return self.points[0]


def latest_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Keep the newest sweep's row of each (point_id, level).

    Sweep folders are named by their start timestamp, which sorts in time order.
    """
    ordered = table.sort_values("sweep", kind="mergesort")
    return ordered.drop_duplicates(["point_id", "level"], keep="last")


def select_role_rows(
    table: pd.DataFrame, role: Role, tokens_per_request: int | None
) -> tuple[pd.DataFrame, int]:
    """Return the role's rows measured at the target length (ISL or OSL) and that length.

    With tokens_per_request None, the target is the length that the rows were measured
    at, and SolverError is raised when the rows were measured at several lengths.
    """
    spec = ROLE_SPECS[role]
    rows = table[table["mode.name"].astype(str) == role.value]
    if rows.empty:
        raise SolverError(
            f"the results table has no {role.value} rows (mode.name={role.value}); collect "
            f"the results of a {role.value} experiment such as "
            f"+experiment={EXAMPLE_EXPERIMENTS[role]}"
        )

    lengths = pd.to_numeric(rows[spec.length_column], errors="coerce")
    measured = sorted({int(length) for length in lengths.dropna()})
    if not measured:
        raise SolverError(
            f"no {role.value} row has a {spec.length_column}; pass {spec.length_key}=N "
            "or re-collect the results with this version of harness"
        )
    if tokens_per_request is None:
        if len(measured) > 1:
            raise SolverError(
                f"{role.value} rows were measured at several {spec.length_label}s "
                f"({', '.join(map(str, measured))}); pick one with {spec.length_key}={measured[0]}"
            )
        tokens_per_request = measured[0]

    matching = rows[lengths == tokens_per_request]
    if matching.empty:
        raise SolverError(
            f"no {role.value} row was measured at {spec.length_label} {tokens_per_request} "
            f"(measured: {', '.join(map(str, measured))}); pass {spec.length_key}={measured[0]} "
            f"or measure {role.value} at {spec.length_label} {tokens_per_request}"
        )
    return matching, tokens_per_request


def role_capacity(
    rows: pd.DataFrame,
    role: Role,
    slo_ms: float | None,
    percentile: int,
    tokens_per_request: int,
) -> RoleCapacity:
    """Find each config's best level within the SLO, or raise SolverError when none meets it.

    Invalid levels and levels that completed no request are left out and counted,
    so the caller can show how much of the table did not feed the result.
    """
    spec = ROLE_SPECS[role]
    latency_column = f"{spec.latency_stat}_p{percentile}"
    throughput = pd.to_numeric(rows[spec.throughput_column], errors="coerce")
    latency = pd.to_numeric(rows[latency_column], errors="coerce")

    valid = rows["valid"].map(_is_true).astype(bool)
    completed = pd.to_numeric(rows["completed"], errors="coerce").fillna(0) > 0
    measured = valid & completed & throughput.notna()
    within_slo = measured if slo_ms is None else measured & (latency <= slo_ms)

    # Assign before filtering, because pandas gives an empty frame a new column's index.
    candidates = rows.assign(_throughput=throughput, _latency=latency)[within_slo]
    if candidates.empty:
        raise SolverError(_no_capacity_message(role, rows, measured, latency, slo_ms, percentile))

    # Per point, the highest throughput wins, and a tie goes to the lower latency.
    candidates = candidates.sort_values(
        ["_throughput", "_latency", "level"], ascending=[False, True, True], kind="mergesort"
    )
    points = []
    for _, row in candidates.drop_duplicates("point_id", keep="first").iterrows():
        gpus_per_worker = int(row["gpus_per_worker"])
        points.append(
            PointCapacity(
                role=role,
                point_id=str(row["point_id"]),
                experiment=str(row.get("experiment", "")),
                sweep=str(row["sweep"]),
                parallelism=row_parallelism_label(row),
                gpus_per_worker=gpus_per_worker,
                level=str(row["level"]),
                tps_per_gpu=float(row["_throughput"]),
                latency_ms=float(row["_latency"]),
                requests_per_s=float(row["_throughput"]) * gpus_per_worker / tokens_per_request,
            )
        )
    points.sort(key=lambda point: (-point.tps_per_gpu, point.gpus_per_worker, point.point_id))

    return RoleCapacity(
        role=role,
        tokens_per_request=tokens_per_request,
        points=tuple(points),
        levels_total=len(rows),
        levels_invalid=int((~valid).sum()),
        levels_without_completions=int((valid & ~completed).sum()),
        levels_over_slo=int((measured & ~within_slo).sum()),
    )


def _no_capacity_message(
    role: Role,
    rows: pd.DataFrame,
    measured: pd.Series,
    latency: pd.Series,
    slo_ms: float | None,
    percentile: int,
) -> str:
    spec = ROLE_SPECS[role]
    label = f"{spec.latency_label} p{percentile}"
    if not measured.any():
        flags = []
        if "flags" in rows:
            flags = sorted({str(flag) for flag in rows["flags"].dropna() if str(flag)})
        flags_text = f" (flags: {' | '.join(flags)})" if flags else ""
        return (
            f"none of the {len(rows)} {role.value} levels is valid with completed requests"
            f"{flags_text}; fix the cause and re-run those points"
        )

    measured_latency = latency[measured].dropna()
    if measured_latency.empty:
        return (
            f"none of the {int(measured.sum())} valid {role.value} levels reports {label}; "
            f"re-run them or choose another bench.slo.percentile"
        )
    best_index = measured_latency.idxmin()
    best = rows.loc[best_index]
    return (
        f"no {role.value} level meets {label} <= {slo_ms:g} ms: the lowest {label} among "
        f"{int(measured.sum())} valid levels is {measured_latency[best_index]:.1f} ms "
        f"(point {best['point_id']}, level {best['level']}); raise {spec.slo_key} or "
        "measure lower load levels"
    )


def _is_true(value: Any) -> bool:
    # Only a boolean true counts, so a level whose "valid" is missing never feeds the solver.
    return isinstance(value, (bool, np.bool_)) and bool(value)
