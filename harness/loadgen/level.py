"""Data types of one load level: what to run (LevelSpec), when to flag it (ValidityThresholds)
and how far it got (LevelProgress).

runner.py re-exports all three, which is where callers import them from.
"""

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from harness.errors import ConfigError
from harness.loadgen.prompts import ENDPOINT_KINDS, EndpointKind
from harness.results.layout import level_name

ARRIVAL_KINDS: tuple[str, ...] = ("poisson", "gamma")

PHASE_WARMUP = "warmup"
PHASE_MEASURE = "measure"

_ENDPOINT_PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}


@dataclass(frozen=True)
class ValidityThresholds:
    """Limits above which a level is flagged invalid (summary valid: false); mirrors bench.validity."""

    max_error_rate: float = 0.05
    # Share of successful requests whose server-reported ISL or OSL differs from the target.
    max_mismatch_rate: float = 0.01
    # p99 of (actual send - scheduled send); checked for open-loop levels only.
    max_send_lag_ms: float = 10.0
    # p99 of the client's event-loop lag; above it the client was saturated.
    max_loop_lag_ms: float = 20.0


@dataclass(frozen=True)
class LevelSpec:
    """Everything one level needs: server, workload, load pattern, limits and SLOs.

    Closed loop (request_rate None): exactly `concurrency` requests stay in flight.
    Open loop (request_rate set): requests leave on a seeded schedule of `arrival`
    inter-arrival times, and `concurrency`, when set, caps the requests in flight.
    """

    base_url: str  # e.g. http://127.0.0.1:8000, with or without a trailing /v1
    model: str  # served model name
    endpoint: EndpointKind
    isl: int
    osl: int
    concurrency: int | None
    num_requests: int  # measured requests
    warmup_requests: int  # sent first under the same load pattern, drained, excluded from the summary
    timeout_s: float  # total timeout of one request
    vocab_size: int
    seed: int
    num_gpus: int  # GPUs of the serving topology, for the *_per_gpu figures
    slo_ttft_ms: float | None
    slo_itl_ms: float | None
    # Percentile at which the solver applies the SLOs. Goodput checks each request instead.
    slo_percentile: int
    request_rate: float | None = None  # requests/s
    arrival: str = "poisson"
    # Shape of the gamma inter-arrival times: below 1 burstier than Poisson, 1 equals Poisson.
    burstiness: float = 1.0
    # Time from send to the first token after which a request fails as "ttft_timeout".
    ttft_timeout_s: float | None = None
    # Client processes; None picks a count from the load (see plan.client_process_count).
    # A count above what the level can split (concurrency, cap, requests) is lowered to it.
    client_processes: int | None = None
    validity: ValidityThresholds = ValidityThresholds()
    # Sent as a Bearer token, and kept out of repr, logs, records and summaries.
    api_key: str | None = field(default=None, repr=False)
    # A closed-loop level needs num_requests >= this x concurrency (bench.min_requests_per_concurrency).
    min_requests_per_concurrency: int = 3

    def __post_init__(self) -> None:
        # Config values arrive as str-valued Enums; plain strings pickle and compare simply.
        object.__setattr__(self, "endpoint", _plain(self.endpoint))
        object.__setattr__(self, "arrival", _plain(self.arrival))

        if self.endpoint not in ENDPOINT_KINDS:
            raise ConfigError(f"endpoint={self.endpoint!r} is not supported; use one of {ENDPOINT_KINDS}")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url={self.base_url!r} must start with http:// or https://")
        for name in ("isl", "osl", "num_requests", "vocab_size", "num_gpus"):
            _check_at_least(name, getattr(self, name), 1)
        _check_at_least("warmup_requests", self.warmup_requests, 0)
        _check_at_least("min_requests_per_concurrency", self.min_requests_per_concurrency, 0)
        _check_seconds("timeout_s", self.timeout_s)
        if self.ttft_timeout_s is not None:
            _check_seconds("ttft_timeout_s", self.ttft_timeout_s)
        if self.client_processes is not None:
            _check_at_least("client_processes", self.client_processes, 1)
        if self.concurrency is not None:
            _check_at_least("concurrency", self.concurrency, 1)

        if self.request_rate is None:
            self._check_closed_loop()
        else:
            self._check_open_loop()

    def _check_closed_loop(self) -> None:
        if self.concurrency is None:
            raise ConfigError("a closed-loop level needs a concurrency; set concurrency, or set request_rate for open loop")
        needed = self.min_requests_per_concurrency * self.concurrency
        if self.num_requests < needed:
            raise ConfigError(
                f"num_requests={self.num_requests} is too small for concurrency={self.concurrency}: a "
                f"closed-loop level needs at least {self.min_requests_per_concurrency} x {self.concurrency} "
                f"= {needed} requests so that {self.concurrency} stay in flight for most of it; raise "
                "num_requests (bench.requests_per_level) or lower the concurrency"
            )

    def _check_open_loop(self) -> None:
        rate = self.request_rate
        if not (rate > 0 and math.isfinite(rate)):
            raise ConfigError(f"request_rate={rate} is invalid; set a positive number of requests/s")
        if self.arrival not in ARRIVAL_KINDS:
            raise ConfigError(f"arrival={self.arrival!r} is not supported; use one of {ARRIVAL_KINDS}")
        if not (self.burstiness > 0 and math.isfinite(self.burstiness)):
            raise ConfigError(f"burstiness={self.burstiness} is invalid; set a positive gamma shape such as 0.5 or 2")
        if self.arrival == "poisson" and self.burstiness != 1.0:
            raise ConfigError(
                f"burstiness={self.burstiness} has no effect with arrival='poisson'; set arrival='gamma' "
                "to use it, or burstiness=1"
            )

    @property
    def open_loop(self) -> bool:
        return self.request_rate is not None

    @property
    def name(self) -> str:
        """Folder name of the level, e.g. c16, r2.5 or r2.5_c64."""
        return level_name(concurrency=self.concurrency, request_rate=self.request_rate)

    @property
    def url(self) -> str:
        base = self.base_url.rstrip("/").removesuffix("/v1")
        return base + _ENDPOINT_PATHS[self.endpoint]

    @property
    def seed_key(self) -> tuple[int, ...]:
        """Seed of the level's prompts and schedule, distinct for every level of a job."""
        if self.request_rate is None:
            return (self.seed, self.concurrency or 0)
        # The rate in micro-requests/s keeps rates such as 2.5 and 2.6 apart.
        return (self.seed, self.concurrency or 0, round(self.request_rate * 1_000_000))


@dataclass(frozen=True)
class LevelProgress:
    """Counts of one phase of a running level, summed over its client processes.

    output_tokens counts the tokens of every token event received so far, failed
    requests included. elapsed_s runs from the start of the phase.
    """

    done: int
    total: int
    in_flight: int
    failed: int
    output_tokens: int
    elapsed_s: float
    # "warmup" while the warmup requests run, then "measure".
    phase: str = PHASE_MEASURE


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _check_at_least(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise ConfigError(f"{name}={value} is invalid; set it to {minimum} or more")


def _check_seconds(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name}={value} is invalid; set a positive number of seconds")
