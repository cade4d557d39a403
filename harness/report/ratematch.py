"""Rate matching of one disaggregated point: what each pool delivered and what it can deliver.

Per load level, the prefill pool's input tok/s is the sum over prefill-* workers of
their prompt_tokens_total delta / the level's seconds, and the decode pool's output
tok/s is the same sum of generation_tokens_total over decode-* workers. Dividing by
ISL and OSL turns both into requests/s, to compare with the client's request rate.

Each pool's capacity in requests/s comes, in this order of preference, from
- an isolated run of that role at the same ISL (prefill) or OSL (decode): its best
  valid level's tok/s per GPU x the pool's GPUs / ISL or OSL;
- an estimate from the level's server metrics. Prefill: sum over prefill workers of
  prompt tokens / busy seconds (sim:busy_seconds_total), / ISL. Decode: sum over
  decode workers of output tok/s x batch limit / mean running batch, / OSL.
"""

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import pandas as pd

from harness.report.server_metrics import (
    BUSY_SECONDS_METRIC,
    BUSY_SECONDS_NAME,
    CounterDelta,
    counter_deltas,
    interior_mean,
)
from harness.solver.capacity import Role, latest_rows, role_capacity, select_role_rows


class CapacitySource(str, Enum):
    isolated = "isolated run"
    busy_time = "busy-time estimate"
    running_batch = "running-batch estimate"


@dataclass(frozen=True)
class PoolShape:
    """Deployment of a disaggregated point: ISL, OSL, workers per pool and their GPUs."""

    isl: int
    osl: int
    prefill_workers: int
    decode_workers: int
    gpus_per_worker: int
    # Max running requests of one decode worker, None when engine.args sets none.
    decode_batch_limit: int | None = None
    # GPUs of one worker of each pool where its parallelism differs from gpus_per_worker
    # (mode.prefill_parallelism, mode.decode_parallelism); None uses gpus_per_worker.
    prefill_gpus_per_worker: int | None = None
    decode_gpus_per_worker: int | None = None

    @property
    def prefill_gpus(self) -> int:
        gpus = self.gpus_per_worker if self.prefill_gpus_per_worker is None else self.prefill_gpus_per_worker
        return self.prefill_workers * gpus

    @property
    def decode_gpus(self) -> int:
        gpus = self.gpus_per_worker if self.decode_gpus_per_worker is None else self.decode_gpus_per_worker
        return self.decode_workers * gpus


@dataclass(frozen=True)
class ClientLevel:
    """The client's summary of one level: its load and its throughputs over the measurement window."""

    level: str
    # Concurrency of a closed-loop level, request rate in requests/s of an open-loop one.
    load: float
    valid: bool
    request_throughput_rps: float | None
    input_throughput_tps: float | None
    output_throughput_tps: float | None


@dataclass(frozen=True)
class IsolatedCapacity:
    """The best valid level of the isolated runs of one role, in tok/s per GPU."""

    role: Role
    point_id: str
    level: str
    tps_per_gpu: float


@dataclass(frozen=True)
class RateMatchLevel:
    """One level's delivered rates per pool and the pools' capacities, None where unknown."""

    level: str
    load: float
    valid: bool
    achieved_rps: float | None
    client_input_tps: float | None
    client_output_tps: float | None
    # Client token rates / ISL or OSL.
    client_input_rps: float | None
    client_output_rps: float | None
    # Pool totals from the workers' counters, and the same / ISL or OSL.
    prefill_input_tps: float | None
    decode_output_tps: float | None
    prefill_input_rps: float | None
    decode_output_rps: float | None
    prefill_capacity_rps: float | None
    decode_capacity_rps: float | None
    prefill_capacity_source: CapacitySource | None
    decode_capacity_source: CapacitySource | None


@dataclass(frozen=True)
class RateMatch:
    """Rate matching of every level of one point, and notes on where capacities come from."""

    levels: tuple[RateMatchLevel, ...]
    notes: tuple[str, ...]


def rate_match(
    shape: PoolShape,
    client_levels: Sequence[ClientLevel],
    server_metrics: pd.DataFrame | None,
    isolated_prefill: IsolatedCapacity | None = None,
    isolated_decode: IsolatedCapacity | None = None,
) -> RateMatch:
    """Compute each level's pool rates and capacities (see the module docstring for the formulas)."""
    levels = []
    for client in client_levels:
        level_frame = None
        if server_metrics is not None:
            level_frame = server_metrics[server_metrics["level"].astype(str) == client.level]
        prompt = [] if level_frame is None else counter_deltas(level_frame, "prompt_tokens_total", "prefill")
        generation = [] if level_frame is None else counter_deltas(level_frame, "generation_tokens_total", "decode")
        prefill_tps = _summed_rate(prompt)
        # NOTE: an engine whose prefill worker emits the first token may count it there,
        # so the decode pool's counter can fall one token per request short of the client.
        decode_tps = _summed_rate(generation)

        prefill_capacity = _prefill_capacity(shape, isolated_prefill, level_frame, prompt)
        decode_capacity = _decode_capacity(shape, isolated_decode, level_frame, generation)
        levels.append(RateMatchLevel(
            level=client.level,
            load=client.load,
            valid=client.valid,
            achieved_rps=client.request_throughput_rps,
            client_input_tps=client.input_throughput_tps,
            client_output_tps=client.output_throughput_tps,
            client_input_rps=_divide(client.input_throughput_tps, shape.isl),
            client_output_rps=_divide(client.output_throughput_tps, shape.osl),
            prefill_input_tps=prefill_tps,
            decode_output_tps=decode_tps,
            prefill_input_rps=_divide(prefill_tps, shape.isl),
            decode_output_rps=_divide(decode_tps, shape.osl),
            prefill_capacity_rps=None if prefill_capacity is None else prefill_capacity[0],
            decode_capacity_rps=None if decode_capacity is None else decode_capacity[0],
            prefill_capacity_source=None if prefill_capacity is None else prefill_capacity[1],
            decode_capacity_source=None if decode_capacity is None else decode_capacity[1],
        ))

    notes = _notes(shape, levels, server_metrics, isolated_prefill, isolated_decode)
    return RateMatch(levels=tuple(levels), notes=tuple(notes))


def isolated_capacity(table: pd.DataFrame, role: Role, tokens_per_request: int) -> IsolatedCapacity | None:
    """Find the best valid level of the table's isolated runs of a role at the given ISL or OSL.

    Returns None when the table has no run of that role. Raises SolverError when it has
    some but none measured at tokens_per_request, or none with a valid level.
    """
    if "mode.name" not in table.columns or not (table["mode.name"].astype(str) == role.value).any():
        return None
    rows, _ = select_role_rows(latest_rows(table), role, tokens_per_request)
    # With no SLO, the percentile only names a latency column that nothing compares.
    best = role_capacity(rows, role, None, 90, tokens_per_request).best
    return IsolatedCapacity(role=role, point_id=best.point_id, level=best.level, tps_per_gpu=best.tps_per_gpu)


# engine.args keys that cap a worker's running requests, each with whether the cap
# applies per data-parallel rank: vLLM applies max_num_seqs per DP rank.
# NOTE: the per-rank semantics of SGLang's max_running_requests and TRT-LLM's
# max_batch_size under data parallelism are taken as per worker without a check.
BATCH_LIMIT_KEYS = (
    ("max_running_requests", False),
    ("max_num_seqs", True),
    ("max_batch_size", False),
)


def decode_batch_limit(engine_args: dict, dp: int) -> int | None:
    """Return the max running requests of one worker from its engine args, or None when unset."""
    for key, per_rank in BATCH_LIMIT_KEYS:
        value = engine_args.get(key)
        # The collected table stores a flag as text ("256") when points give it values of several types.
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        # numbers.Real covers numpy's int64 of a table cell; bool is excluded on purpose.
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and value > 0:
            return int(value) * (dp if per_rank else 1)
    return None


def _summed_rate(deltas: Sequence[CounterDelta]) -> float | None:
    rates = [delta.rate_per_s for delta in deltas if delta.rate_per_s is not None]
    return sum(rates) if rates else None


def _divide(value: float | None, divisor: int) -> float | None:
    return None if value is None or divisor <= 0 else value / divisor


def _prefill_capacity(
    shape: PoolShape,
    isolated: IsolatedCapacity | None,
    level_frame: pd.DataFrame | None,
    prompt: Sequence[CounterDelta],
) -> tuple[float, CapacitySource] | None:
    if isolated is not None:
        return isolated.tps_per_gpu * shape.prefill_gpus / shape.isl, CapacitySource.isolated
    if level_frame is None:
        return None

    busy_s = {delta.worker: delta.delta for delta in counter_deltas(level_frame, BUSY_SECONDS_METRIC, "prefill")}
    busy_rates = [delta.delta / busy_s[delta.worker] for delta in prompt if busy_s.get(delta.worker, 0) > 0]
    if not busy_rates:
        return None
    return sum(busy_rates) / shape.isl, CapacitySource.busy_time


def _decode_capacity(
    shape: PoolShape,
    isolated: IsolatedCapacity | None,
    level_frame: pd.DataFrame | None,
    generation: Sequence[CounterDelta],
) -> tuple[float, CapacitySource] | None:
    if isolated is not None:
        return isolated.tps_per_gpu * shape.decode_gpus / shape.osl, CapacitySource.isolated
    if level_frame is None or shape.decode_batch_limit is None:
        return None

    # A worker's tok/s scaled from its mean batch to a full batch.
    full_batch_rates = []
    for delta in generation:
        running = interior_mean(level_frame, "running_requests", delta.worker)
        if delta.rate_per_s is not None and running is not None and running > 0:
            full_batch_rates.append(delta.rate_per_s * shape.decode_batch_limit / running)
    if not full_batch_rates:
        return None
    return sum(full_batch_rates) / shape.osl, CapacitySource.running_batch


def _notes(
    shape: PoolShape,
    levels: Sequence[RateMatchLevel],
    server_metrics: pd.DataFrame | None,
    isolated_prefill: IsolatedCapacity | None,
    isolated_decode: IsolatedCapacity | None,
) -> list[str]:
    notes = []
    if server_metrics is None:
        notes.append(
            "no server_metrics.parquet: the pools' token rates from the workers' counters "
            "and the capacity estimates are missing"
        )

    if isolated_prefill is not None:
        notes.append(
            f"prefill capacity from isolated prefill point {isolated_prefill.point_id} level "
            f"{isolated_prefill.level}: {isolated_prefill.tps_per_gpu:,.0f} input tok/s per GPU "
            f"x {shape.prefill_gpus} GPUs / ISL {shape.isl}"
        )
    elif any(level.prefill_capacity_source is CapacitySource.busy_time for level in levels):
        notes.append(
            "prefill capacity estimated per level: prompt tokens / busy seconds of each "
            f"prefill worker ({BUSY_SECONDS_NAME}), summed over the pool, / ISL {shape.isl}"
        )
    elif server_metrics is not None:
        notes.append(
            f"prefill capacity not drawn: no isolated prefill run at ISL {shape.isl} was given, "
            f"and the prefill workers export no {BUSY_SECONDS_NAME}"
        )

    if isolated_decode is not None:
        notes.append(
            f"decode capacity from isolated decode point {isolated_decode.point_id} level "
            f"{isolated_decode.level}: {isolated_decode.tps_per_gpu:,.0f} output tok/s per GPU "
            f"x {shape.decode_gpus} GPUs / OSL {shape.osl}"
        )
    elif any(level.decode_capacity_source is CapacitySource.running_batch for level in levels):
        notes.append(
            "decode capacity estimated per level: each decode worker's output tok/s x batch "
            f"limit {shape.decode_batch_limit} / its mean running batch, summed over the pool, "
            f"/ OSL {shape.osl}. This is an upper bound, because the token rate per sequence "
            "falls as the batch grows"
        )
    elif server_metrics is not None and shape.decode_batch_limit is None:
        notes.append(
            f"decode capacity not drawn: no isolated decode run at OSL {shape.osl} was given, "
            "and engine.args sets no max_running_requests, max_num_seqs or max_batch_size"
        )
    elif server_metrics is not None:
        notes.append(
            "decode capacity not drawn: the decode workers report no running batch above 0 "
            "between the first and last scrape of any level"
        )
    return notes
