"""Load levels of a config as LevelSpecs, for a sweep's job and for `harness bench`.

Closed loop: one level per bench.concurrency value, named c<concurrency>. Open loop
(bench.request_rate set): one level per rate, named r<rate>, or r<rate>_c<cap> when
bench.max_concurrency caps the requests in flight.
"""

import logging
import os

import pandas as pd
from omegaconf import DictConfig

from harness.config.derived import effective_lengths
from harness.errors import ConfigError
from harness.loadgen.crosscheck import apply_cross_check, cross_check_tokens
from harness.loadgen.records import write_records_parquet
from harness.loadgen.runner import LevelResult, LevelSpec, ValidityThresholds
from harness.results.io import write_json_atomic, write_parquet_atomic
from harness.results.layout import PointPaths, level_name

logger = logging.getLogger(__name__)


def level_loads(cfg: DictConfig) -> list[tuple[str, int | None, float | None]]:
    """Return (level name, concurrency, request rate) of every level, in the configured order.

    Raises ConfigError when two levels would share a name, and so a results folder.
    """
    bench = cfg.bench
    if bench.request_rate is not None:
        loads = [(bench.max_concurrency, float(rate)) for rate in bench.request_rate]
    else:
        loads = [(int(concurrency), None) for concurrency in bench.concurrency]

    named: list[tuple[str, int | None, float | None]] = []
    seen: set[str] = set()
    for concurrency, request_rate in loads:
        name = level_name(concurrency=concurrency, request_rate=request_rate)
        if name in seen:
            key = "bench.request_rate" if request_rate is not None else "bench.concurrency"
            raise ConfigError(f"{key} lists level {name} twice; remove the duplicate value")
        seen.add(name)
        named.append((name, concurrency, request_rate))
    return named


def level_names(cfg: DictConfig) -> list[str]:
    """Return the folder names of the config's levels, in the configured order."""
    return [name for name, _, _ in level_loads(cfg)]


def level_specs(
    cfg: DictConfig, base_url: str, num_gpus: int, api_key: str | None
) -> list[tuple[str, LevelSpec]]:
    """Build (level name, LevelSpec) for every load level of the config against base_url.

    The model name is endpoint.model when set (`harness bench`), else model.served_name.
    ISL and OSL come from the mode where it sets them, else from the workload. num_gpus
    is the serving topology's GPU count, which divides the *_per_gpu figures.
    """
    isl, osl = effective_lengths(cfg)
    bench = cfg.bench
    model = cfg.endpoint.model if cfg.endpoint.model is not None else cfg.model.served_name
    validity = ValidityThresholds(
        max_error_rate=bench.validity.max_error_rate,
        max_mismatch_rate=bench.validity.max_mismatch_rate,
        max_send_lag_ms=bench.validity.max_send_lag_ms,
        max_loop_lag_ms=bench.validity.max_loop_lag_ms,
    )

    specs = []
    for name, concurrency, request_rate in level_loads(cfg):
        spec = LevelSpec(
            base_url=base_url,
            model=model,
            endpoint=cfg.workload.endpoint.value,
            isl=isl,
            osl=osl,
            concurrency=concurrency,
            num_requests=bench.requests_per_level,
            warmup_requests=bench.warmup_requests,
            timeout_s=bench.timeout_s,
            vocab_size=cfg.model.vocab_size,
            seed=bench.seed,
            num_gpus=num_gpus,
            slo_ttft_ms=bench.slo.ttft_ms,
            slo_itl_ms=bench.slo.itl_ms,
            slo_percentile=bench.slo.percentile,
            request_rate=request_rate,
            arrival=bench.arrival.value,
            burstiness=bench.burstiness,
            ttft_timeout_s=bench.ttft_timeout_s,
            client_processes=bench.client_processes,
            validity=validity,
            api_key=api_key,
            min_requests_per_concurrency=bench.min_requests_per_concurrency,
        )
        specs.append((name, spec))
    return specs


def api_key_from_env(cfg: DictConfig) -> str | None:
    """Read the API key from the environment variable that endpoint.api_key_env names.

    Returns None when endpoint.api_key_env is null. Raises ConfigError, naming the
    variable but never showing a value, when the variable is unset or empty.
    """
    variable = cfg.endpoint.api_key_env
    if variable is None:
        return None
    key = os.environ.get(variable)
    if key is None:
        raise ConfigError(
            f"environment variable {variable} (endpoint.api_key_env) is not set; export it "
            f"with the server's API key, or set endpoint.api_key_env=null for a server without one"
        )
    if not key.strip():
        raise ConfigError(
            f"environment variable {variable} (endpoint.api_key_env) is empty; export it "
            f"with the server's API key, or set endpoint.api_key_env=null for a server without one"
        )
    return key


def write_level_results(
    paths: PointPaths, level: str, result: LevelResult, server_metrics: pd.DataFrame
) -> None:
    """Write server_metrics.parquet (all levels so far), then requests.parquet, then summary.json.

    summary.json comes last because its presence marks the level as measured, so a
    crash before it makes a re-run measure the level again.
    """
    apply_cross_check(result.summary, cross_check_tokens(result.records, server_metrics, level))

    write_parquet_atomic(paths.server_metrics, server_metrics)
    write_records_parquet(paths.requests(level), result.records)
    write_json_atomic(paths.summary(level), result.summary)
    summary = result.summary
    logger.info(
        "level %s done: %d completed, %d failed, %.0f output tok/s, written to %s",
        level, summary["completed"], summary["failed"], summary["output_throughput_tps"] or 0.0,
        paths.level_dir(level),
    )
