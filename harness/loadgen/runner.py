"""Run one load level: warmup, then the measured requests, in closed or open loop, in one
or several client processes, and summarize the measured ones.

Closed loop keeps exactly C requests in flight. Open loop sends each request at its
time on a seeded schedule, waiting for a free slot when a cap is set. See plan.py for
how a level splits across processes and share.py for what each process runs.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from harness.loadgen.level import LevelProgress, LevelSpec, ValidityThresholds
from harness.loadgen.multiprocess import run_shares_in_processes
from harness.loadgen.plan import client_process_count, plan_shares
from harness.loadgen.records import RequestRecord, records_to_frame
from harness.loadgen.share import LocalCoordinator, run_share
from harness.loadgen.summary import summarize_level

logger = logging.getLogger(__name__)

__all__ = ["LevelProgress", "LevelResult", "LevelSpec", "ValidityThresholds", "run_level", "summarize_spec"]


@dataclass
class LevelResult:
    """Records of one level (warmup included), its summary.json dict and its records as a table."""

    records: list[RequestRecord]
    summary: dict[str, Any]
    frame: pd.DataFrame
    # Event-loop lag samples of the measured phase, from every client process, in ns.
    loop_lag_ns: list[int] = field(default_factory=list)


def run_level(spec: LevelSpec, progress: Callable[[LevelProgress], None] | None = None) -> LevelResult:
    """Run the warmup and the measured requests of spec, then summarize the measured ones.

    progress, when given, receives the counts of the running phase (warmup, then
    measure) about 4 times a second and once more when each phase ends. Its last call
    has the final counts of the measured phase. Blocks until the level ends. With one
    client process it runs its own event loop, so call it from a thread that is not
    running one. With several, the worker processes start with the "spawn" method,
    which imports the caller's main module again: a script that calls run_level must
    guard its entry point with `if __name__ == "__main__":`.
    """
    processes = client_process_count(spec)
    shares = plan_shares(spec, processes)
    load = f"rate {spec.request_rate} requests/s ({spec.arrival})" if spec.open_loop else f"concurrency {spec.concurrency}"
    logger.info(
        "level %s: %d warmup and %d measured requests at %s to %s, %d client process(es)",
        spec.name,
        spec.warmup_requests,
        spec.num_requests,
        load,
        spec.url,
        processes,
    )

    if processes == 1:
        outcome = asyncio.run(run_share(spec, shares[0], LocalCoordinator(progress)))
        records, loop_lag_ns = outcome.records, outcome.loop_lag_ns
    else:
        records, loop_lag_ns = run_shares_in_processes(spec, shares, progress)

    summary = summarize_spec(records, spec, loop_lag_ns, processes)
    logger.info(
        "level %s: %d completed, %d failed in %.3f s, output %.1f tok/s",
        spec.name,
        summary["completed"],
        summary["failed"],
        summary["duration_s"] or 0.0,
        summary["output_throughput_tps"] or 0.0,
    )
    if summary["flags"]:
        logger.warning("level %s is flagged invalid: %s", spec.name, "; ".join(summary["flags"]))
    return LevelResult(records=records, summary=summary, frame=records_to_frame(records), loop_lag_ns=loop_lag_ns)


def summarize_spec(
    records: list[RequestRecord], spec: LevelSpec, loop_lag_ns: list[int], client_processes: int = 1
) -> dict[str, Any]:
    """Summarize records of spec's level with spec's targets, SLOs and thresholds."""
    return summarize_level(
        records,
        concurrency=spec.concurrency,
        request_rate=spec.request_rate,
        num_gpus=spec.num_gpus,
        target_isl=spec.isl,
        target_osl=spec.osl,
        warmup_requests=spec.warmup_requests,
        slo_ttft_ms=spec.slo_ttft_ms,
        slo_itl_ms=spec.slo_itl_ms,
        check_isl=spec.endpoint == "completions",
        loop_lag_ns=loop_lag_ns,
        validity=spec.validity,
        arrival=spec.arrival,
        burstiness=spec.burstiness,
        client_processes=client_processes,
    )
