"""Checks across keys that the schema's types cannot express."""

from omegaconf import DictConfig

from harness.config.derived import effective_lengths
from harness.config.schema import ArrivalKind, ModeName
from harness.errors import ConfigError


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first invalid value and how to fix it."""
    _validate_parallelism(cfg.parallelism, "parallelism")
    _validate_mode(cfg)
    _validate_workload(cfg)
    _validate_bench(cfg)


def _validate_mode(cfg: DictConfig) -> None:
    mode = cfg.mode
    for key in ("prefill_workers", "decode_workers"):
        if mode.name == ModeName.disagg and mode[key] < 1:
            raise ConfigError(
                f"mode.{key}={mode[key]} is invalid: a disaggregated point needs >= 1 worker in each pool"
            )

    for key in ("prefill_parallelism", "decode_parallelism"):
        if mode[key] is None:
            continue
        if mode.name != ModeName.disagg:
            raise ConfigError(
                f"mode.{key} is set but mode.name={mode.name.value} runs one aggregated worker "
                f"that uses `parallelism`: set mode=disagg, or drop the mode.{key} override"
            )
        _validate_parallelism(mode[key], f"mode.{key}")


def _validate_parallelism(par: DictConfig, where: str) -> None:
    for key in ("tp", "dp", "ep", "pp"):
        if par[key] < 1:
            raise ConfigError(f"{where}.{key}={par[key]} is invalid: it must be >= 1")

    # Experts are sharded over the attention ranks of one worker, so EP must divide them.
    ranks = par.tp * par.dp
    if ranks % par.ep != 0:
        raise ConfigError(
            f"{where}.ep={par.ep} does not divide tp*dp={ranks}: choose ep among "
            f"the divisors of {ranks}"
        )
    if par.dp_attention and par.dp < 2:
        raise ConfigError(
            f"{where}.dp_attention=true needs {where}.dp >= 2, got dp={par.dp}"
        )


def _validate_workload(cfg: DictConfig) -> None:
    for key in ("isl", "osl"):
        value = cfg.workload[key]
        if value < 1:
            raise ConfigError(f"workload.{key}={value} is invalid: it must be >= 1 token")
        mode_value = cfg.mode[key]
        if mode_value is not None and mode_value < 1:
            raise ConfigError(f"mode.{key}={mode_value} is invalid: it must be >= 1 token")

    isl, osl = effective_lengths(cfg)
    if isl + osl > cfg.model.context_length:
        raise ConfigError(
            f"ISL {isl} + OSL {osl} exceeds model.context_length={cfg.model.context_length}: "
            "shorten the workload or raise model.context_length"
        )


def _validate_bench(cfg: DictConfig) -> None:
    bench = cfg.bench
    if bench.request_rate is not None:
        if len(bench.request_rate) == 0:
            raise ConfigError("bench.request_rate is empty: give rates in requests/s, or null")
        for rate in bench.request_rate:
            if not rate > 0:
                raise ConfigError(f"bench.request_rate contains {rate}: rates must be > 0 requests/s")
        if bench.burstiness <= 0:
            raise ConfigError(f"bench.burstiness={bench.burstiness} is invalid: it must be > 0")
        if bench.burstiness != 1.0 and bench.arrival == ArrivalKind.poisson:
            raise ConfigError(
                f"bench.burstiness={bench.burstiness} has no effect with bench.arrival=poisson: "
                "set bench.arrival=gamma, or bench.burstiness=1"
            )
        caps = [bench.max_concurrency] if bench.max_concurrency is not None else []
    else:
        if len(bench.concurrency) == 0:
            raise ConfigError("bench.concurrency is empty: give at least one level, e.g. [1,4,16]")
        caps = list(bench.concurrency)

    for concurrency in caps:
        if concurrency < 1:
            raise ConfigError(f"concurrency {concurrency} is invalid: levels and caps must be >= 1")
    if bench.requests_per_level < 1:
        raise ConfigError(
            f"bench.requests_per_level={bench.requests_per_level} is invalid: it must be >= 1"
        )
    if caps:
        needed = bench.min_requests_per_concurrency * max(caps)
        if bench.requests_per_level < needed:
            raise ConfigError(
                f"bench.requests_per_level={bench.requests_per_level} is too small for "
                f"concurrency {max(caps)}: a level needs at least "
                f"{bench.min_requests_per_concurrency} x {max(caps)} = {needed} requests so that "
                f"{max(caps)} stay in flight for most of it; raise bench.requests_per_level or "
                "lower bench.min_requests_per_concurrency"
            )
    if bench.warmup_requests < 0:
        raise ConfigError(
            f"bench.warmup_requests={bench.warmup_requests} is invalid: it must be >= 0"
        )
    for key in ("timeout_s", "ttft_timeout_s"):
        value = bench[key]
        if value is not None and value <= 0:
            raise ConfigError(f"bench.{key}={value} is invalid: it must be > 0 seconds")
    if bench.client_processes is not None and bench.client_processes < 1:
        raise ConfigError(
            f"bench.client_processes={bench.client_processes} is invalid: use >= 1, or null "
            "to choose automatically"
        )
    if bench.slo.percentile not in (50, 90, 95, 99):
        raise ConfigError(
            f"bench.slo.percentile={bench.slo.percentile} is invalid: use 50, 90, 95 or 99"
        )
