"""Reasons why a level's figures cannot be trusted; a level with none is valid.

A flagged level keeps its figures, but the solver and the report must not use them
silently.
"""

from collections import Counter
from collections.abc import Sequence

from harness.loadgen.level import ValidityThresholds
from harness.loadgen.records import RequestRecord


def validity_flags(
    measured: Sequence[RequestRecord],
    succeeded: Sequence[RequestRecord],
    *,
    isl_mismatch: int,
    osl_mismatch: int,
    check_isl: bool,
    send_lag_p99_ms: float | None,
    loop_lag_p99_ms: float | None,
    open_loop: bool,
    thresholds: ValidityThresholds,
) -> list[str]:
    """Return the flags of a level, or [] for a valid one.

    A level is flagged when its error rate, its ISL or OSL mismatch rate (over
    successful requests), its p99 send lag (open loop only) or the p99 of the client's
    event-loop lag is above thresholds, and when usage was missing. Pass
    check_isl=False for chat prompts, whose ISL is only approximate.
    """
    if not measured:
        return ["no measured requests"]

    flags: list[str] = []
    failed = [record for record in measured if not record.succeeded]
    error_rate = len(failed) / len(measured)
    if error_rate > thresholds.max_error_rate:
        causes = ", ".join(f"{kind} {count}" for kind, count in Counter(r.error_type for r in failed).most_common())
        flags.append(f"error_rate {error_rate:.3g} > {thresholds.max_error_rate} ({causes})")

    if open_loop and send_lag_p99_ms is not None and send_lag_p99_ms > thresholds.max_send_lag_ms:
        flags.append(
            f"send_lag_ms p99 {send_lag_p99_ms:.3g} > {thresholds.max_send_lag_ms}: requests left later than "
            "scheduled, because the concurrency cap was full or the client could not keep up"
        )
    if loop_lag_p99_ms is not None and loop_lag_p99_ms > thresholds.max_loop_lag_ms:
        flags.append(
            f"client_loop_lag_ms p99 {loop_lag_p99_ms:.3g} > {thresholds.max_loop_lag_ms}: the client was "
            "saturated and its timestamps are late; raise bench.client_processes"
        )

    if not succeeded:
        return flags

    checks = [("osl_mismatch", osl_mismatch)]
    if check_isl:
        checks.insert(0, ("isl_mismatch", isl_mismatch))
    for name, count in checks:
        rate = count / len(succeeded)
        if rate > thresholds.max_mismatch_rate:
            flags.append(f"{name} {count}/{len(succeeded)} = {rate:.3g} > {thresholds.max_mismatch_rate}")

    missing = sum(1 for r in succeeded if r.usage_prompt_tokens is None or r.usage_completion_tokens is None)
    if missing:
        flags.append(f"usage missing in {missing}/{len(succeeded)} responses, so ISL and OSL are client-side counts")
    return flags
