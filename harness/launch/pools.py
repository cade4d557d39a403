"""The `pools` entry of a disaggregated level's summary.json: what each pool delivered.

The prefill pool's input tok/s is the sum over prefill-* workers of their
prompt_tokens_total delta / the seconds between the level's first and last scrape. The
decode pool's output tok/s is the same sum of generation_tokens_total over decode-*
workers. harness.report.ratematch computes both, so the report and the summary agree.
Both are also given in requests/s (/ ISL, / OSL), beside the client's figures.
"""

from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from harness.config.derived import effective_lengths, role_parallelism
from harness.engines.render import merged_args
from harness.launch.topology import Role, Topology, gpus_per_worker
from harness.report.ratematch import ClientLevel, PoolShape, decode_batch_limit, rate_match
from harness.report.server_metrics import counter_deltas, interior_mean, role_rows


def pool_shape(cfg: DictConfig, topology: Topology) -> PoolShape:
    """Return the pools of a disaggregated point: ISL, OSL, workers and GPUs per worker."""
    isl, osl = effective_lengths(cfg)
    engine = OmegaConf.to_container(cfg.engine, resolve=True, enum_to_str=True)
    decode_parallelism = role_parallelism(cfg, Role.decode.value)
    return PoolShape(
        isl=isl,
        osl=osl,
        prefill_workers=cfg.mode.prefill_workers,
        decode_workers=cfg.mode.decode_workers,
        gpus_per_worker=gpus_per_worker(cfg.parallelism),
        decode_batch_limit=decode_batch_limit(merged_args(engine, Role.decode), decode_parallelism.dp),
        prefill_gpus_per_worker=gpus_per_worker(role_parallelism(cfg, Role.prefill.value)),
        decode_gpus_per_worker=gpus_per_worker(decode_parallelism),
    )


def pool_summary(shape: PoolShape, summary: dict[str, Any], level: str, level_metrics: pd.DataFrame) -> dict[str, Any]:
    """Return the `pools` object of one level from its summary and its server-metrics rows.

    Rates are None where the counters are missing (fewer than two scrapes of a worker).
    Capacities are the report's estimates from server metrics: prefill from busy time,
    decode from the running batch against the decode batch limit (an upper bound).
    """
    client = ClientLevel(
        level=level,
        load=float(summary.get("concurrency") or summary.get("request_rate") or 0.0),
        valid=bool(summary.get("valid")),
        request_throughput_rps=summary.get("request_throughput_rps"),
        input_throughput_tps=summary.get("input_throughput_tps"),
        output_throughput_tps=summary.get("output_throughput_tps"),
    )
    matched = rate_match(shape, [client], level_metrics).levels[0]

    return {
        "prefill_workers": shape.prefill_workers,
        "decode_workers": shape.decode_workers,
        "prefill_gpus": shape.prefill_gpus,
        "decode_gpus": shape.decode_gpus,
        "prefill_prompt_tokens": _token_total(level_metrics, "prompt_tokens_total", Role.prefill),
        "decode_generation_tokens": _token_total(level_metrics, "generation_tokens_total", Role.decode),
        "prefill_input_tps": matched.prefill_input_tps,
        "prefill_input_rps": matched.prefill_input_rps,
        "decode_output_tps": matched.decode_output_tps,
        "decode_output_rps": matched.decode_output_rps,
        "client_input_tps": matched.client_input_tps,
        "client_input_rps": matched.client_input_rps,
        "client_output_tps": matched.client_output_tps,
        "client_output_rps": matched.client_output_rps,
        "achieved_rps": matched.achieved_rps,
        "prefill_capacity_rps": matched.prefill_capacity_rps,
        "decode_capacity_rps": matched.decode_capacity_rps,
        "decode_batch_limit": shape.decode_batch_limit,
        "prefill_queue_depth_mean": _pool_gauge_mean(level_metrics, "queue_depth", Role.prefill),
        "decode_running_requests_mean": _pool_gauge_mean(level_metrics, "running_requests", Role.decode),
    }


def _token_total(level_metrics: pd.DataFrame, metric: str, role: Role) -> float | None:
    deltas = counter_deltas(level_metrics, metric, role.value)
    return sum(delta.delta for delta in deltas) if deltas else None


def _pool_gauge_mean(level_metrics: pd.DataFrame, metric: str, role: Role) -> float | None:
    """Return the sum over the pool's workers of each one's mean gauge between its first and last scrape."""
    workers = sorted(set(role_rows(level_metrics, role.value)["worker"].astype(str)))
    means = [interior_mean(level_metrics, metric, worker) for worker in workers]
    known = [mean for mean in means if mean is not None]
    return sum(known) if known else None
