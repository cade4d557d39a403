"""Run one closed-loop load level: warmup, then the measured requests at a fixed concurrency.

Closed loop: C workers each send a request, wait for its end, and send the next one at
once, so exactly C requests are in flight until fewer than C remain to be sent.
"""

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pandas as pd

from harness.errors import ConfigError
from harness.loadgen.client import Endpoint, PreparedRequest, send_request
from harness.loadgen.metrics import summarize_level
from harness.loadgen.prompts import ENDPOINT_KINDS, EndpointKind, build_request_body
from harness.loadgen.records import RequestRecord, records_to_frame
from harness.results.layout import level_name

logger = logging.getLogger(__name__)

_ENDPOINT_PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}


@dataclass(frozen=True)
class LevelSpec:
    """Everything one closed-loop level needs: server, workload, load and SLOs."""

    base_url: str  # e.g. http://127.0.0.1:8000, with or without a trailing /v1
    model: str  # served model name
    endpoint: EndpointKind
    isl: int
    osl: int
    concurrency: int
    num_requests: int  # measured requests
    warmup_requests: int  # sent first at the same concurrency, drained, excluded from the summary
    timeout_s: float  # total timeout of one request
    vocab_size: int
    seed: int
    num_gpus: int  # GPUs of the serving topology, for the *_per_gpu figures
    slo_ttft_ms: float | None
    slo_itl_ms: float | None
    # Percentile at which the solver applies the SLOs. Goodput checks each request instead.
    slo_percentile: int
    # Sent as a Bearer token, and kept out of repr, logs and records.
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.endpoint not in ENDPOINT_KINDS:
            raise ConfigError(f"endpoint={self.endpoint!r} is not supported; use one of {ENDPOINT_KINDS}")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url={self.base_url!r} must start with http:// or https://")
        for name in ("isl", "osl", "concurrency", "num_requests", "vocab_size", "num_gpus"):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"{name}={value} is invalid; set it to 1 or more")
        if self.warmup_requests < 0:
            raise ConfigError(f"warmup_requests={self.warmup_requests} is invalid; set it to 0 or more")
        if not (self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            raise ConfigError(f"timeout_s={self.timeout_s} is invalid; set a positive number of seconds")

    @property
    def url(self) -> str:
        base = self.base_url.rstrip("/")
        base = base.removesuffix("/v1")
        return base + _ENDPOINT_PATHS[self.endpoint]


@dataclass
class LevelResult:
    """Records of one level (warmup included), its summary.json dict and its records as a table."""

    records: list[RequestRecord]
    summary: dict[str, Any]
    frame: pd.DataFrame


def run_level(spec: LevelSpec, progress: Callable[[int, int], None] | None = None) -> LevelResult:
    """Run the warmup and the measured requests of spec, then summarize the measured ones.

    progress, when given, is called as progress(done, total) after every measured request.
    Blocks until the level ends; it starts its own event loop, so call it from a thread
    that is not running one.
    """
    name = level_name(concurrency=spec.concurrency)
    logger.info("level %s: %d warmup and %d measured requests to %s", name, spec.warmup_requests, spec.num_requests, spec.url)
    records = asyncio.run(_run_level_async(spec, progress))

    summary = summarize_level(
        records,
        concurrency=spec.concurrency,
        request_rate=None,
        num_gpus=spec.num_gpus,
        target_isl=spec.isl,
        target_osl=spec.osl,
        warmup_requests=spec.warmup_requests,
        slo_ttft_ms=spec.slo_ttft_ms,
        slo_itl_ms=spec.slo_itl_ms,
        check_isl=spec.endpoint == "completions",
    )
    logger.info(
        "level %s: %d completed, %d failed in %.3f s, output %.1f tok/s",
        name,
        summary["completed"],
        summary["failed"],
        summary["duration_s"] or 0.0,
        summary["output_throughput_tps"] or 0.0,
    )
    if summary["flags"]:
        logger.warning("level %s is flagged invalid: %s", name, "; ".join(summary["flags"]))
    return LevelResult(records=records, summary=summary, frame=records_to_frame(records))


def prepare_requests(spec: LevelSpec) -> tuple[list[PreparedRequest], list[PreparedRequest]]:
    """Build the warmup and measured requests of spec, with request ids 0, 1, 2, ... in that order.

    Prompts are seeded with (seed, concurrency, request id), so that no two requests of
    a job share a prompt prefix, across levels and between warmup and measurement.
    """
    # NOTE: every body is built before the level starts and kept in memory, up to
    # 7 bytes per prompt token for token-id prompts (a six-digit id and a comma).
    seed_key = (spec.seed, spec.concurrency)

    def prepare(request_id: int, warmup: bool) -> PreparedRequest:
        body = build_request_body(spec.endpoint, spec.model, request_id, spec.isl, spec.osl, spec.vocab_size, seed_key)
        return PreparedRequest(request_id, warmup, spec.isl, spec.osl, body)

    warmup = [prepare(i, True) for i in range(spec.warmup_requests)]
    measured = [prepare(spec.warmup_requests + i, False) for i in range(spec.num_requests)]
    return warmup, measured


async def run_closed_loop(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    requests: Sequence[PreparedRequest],
    concurrency: int,
    on_record: Callable[[RequestRecord], None] | None = None,
) -> list[RequestRecord]:
    """Send requests with concurrency workers and return their records sorted by request id."""
    pending = iter(requests)
    records: list[RequestRecord] = []

    async def worker() -> None:
        # Workers share one iterator, so no request is sent twice.
        for request in pending:
            record = await send_request(session, endpoint, request, scheduled_perf_ns=time.perf_counter_ns())
            records.append(record)
            if on_record is not None:
                on_record(record)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(requests))):
            group.create_task(worker())
    records.sort(key=lambda record: record.request_id)
    return records


async def _run_level_async(spec: LevelSpec, progress: Callable[[int, int], None] | None) -> list[RequestRecord]:
    warmup, measured = prepare_requests(spec)
    headers = {"Content-Type": "application/json"}
    if spec.api_key is not None:
        headers["Authorization"] = f"Bearer {spec.api_key}"
    endpoint = Endpoint(url=spec.url, kind=spec.endpoint, timeout_s=spec.timeout_s, headers=headers)

    done = 0

    def count_measured(record: RequestRecord) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, len(measured))

    # limit=0 removes aiohttp's default cap of 100 connections, which would hold
    # requests back at concurrency above 100. Each request has its own timeout, so the
    # session's default 300 s total timeout is turned off.
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
        warmup_records = await run_closed_loop(session, endpoint, warmup, spec.concurrency)
        failed = sum(1 for record in warmup_records if not record.succeeded)
        if failed:
            logger.warning("%d of %d warmup requests failed", failed, len(warmup_records))
        measured_records = await run_closed_loop(session, endpoint, measured, spec.concurrency, count_measured)
    return warmup_records + measured_records
