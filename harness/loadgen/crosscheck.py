"""Cross-check the client's token counts against the server's own Prometheus counters.

Both sides count every request of a level, warmup included: the sampler scrapes once
when the level starts and once after its last request ends, so the counter deltas over
the level must match the sum of the responses' usage. A gap above the tolerance means
that one side miscounts (a client that drops events, a server that counts cached tokens
differently), and the level is flagged rather than trusted.
"""

from dataclasses import dataclass

import pandas as pd

from harness.loadgen.records import RequestRecord

# Relative gap above which a level is flagged.
TOLERANCE = 0.01

# Workers that count both a request's prompt and its generated tokens: an aggregated
# worker, or the single server that `harness bench` names "endpoint". Disaggregated
# workers split the counts between roles by engine-specific rules, so they are not checked.
_COUNTED_ROLES = ("aggregated", "endpoint")


@dataclass(frozen=True)
class TokenCrossCheck:
    metric: str
    server_tokens: float
    client_tokens: int

    @property
    def relative_gap(self) -> float:
        reference = max(self.client_tokens, 1)
        return abs(self.server_tokens - self.client_tokens) / reference

    def flag(self) -> str | None:
        if self.relative_gap <= TOLERANCE:
            return None
        return (
            f"{self.metric}: server counted {self.server_tokens:.0f} tokens, client "
            f"{self.client_tokens} ({self.relative_gap:.1%} apart, tolerance {TOLERANCE:.0%})"
        )


def counter_delta(server_metrics: pd.DataFrame, level: str, metric: str) -> float | None:
    """Sum over counted workers of (last - first) sample of `metric` within `level`.

    Returns None when a counted worker has fewer than two samples of it, because one
    sample gives no delta.
    """
    rows = server_metrics[(server_metrics["level"] == level) & (server_metrics["metric"] == metric)]
    roles = rows["worker"].str.rsplit("-", n=1).str[0]
    rows = rows[roles.isin(_COUNTED_ROLES)]
    if rows.empty:
        return None

    total = 0.0
    for _, samples in rows.groupby("worker"):
        if len(samples) < 2:
            return None
        ordered = samples.sort_values("perf_ns")["value"]
        total += float(ordered.iloc[-1] - ordered.iloc[0])
    return total


def cross_check_tokens(
    records: list[RequestRecord], server_metrics: pd.DataFrame, level: str
) -> list[TokenCrossCheck]:
    """Compare prompt and generated token totals of a level; empty when not comparable.

    Not comparable: no counter samples, or a request without usage (a failed request may
    have been counted by the server but not by the client).
    """
    if server_metrics.empty or any(
        record.usage_prompt_tokens is None or record.usage_completion_tokens is None
        for record in records
    ):
        return []

    checks = []
    client_totals = {
        "prompt_tokens_total": sum(record.usage_prompt_tokens for record in records),
        "generation_tokens_total": sum(record.usage_completion_tokens for record in records),
    }
    for metric, client_tokens in client_totals.items():
        server_tokens = counter_delta(server_metrics, level, metric)
        if server_tokens is not None:
            checks.append(TokenCrossCheck(metric, server_tokens, client_tokens))
    return checks


def apply_cross_check(summary: dict, checks: list[TokenCrossCheck]) -> None:
    """Record the checks in the summary and flag the level when a gap exceeds the tolerance."""
    summary["server_token_check"] = {
        check.metric: {"server": check.server_tokens, "client": check.client_tokens,
                       "relative_gap": check.relative_gap}
        for check in checks
    }
    for check in checks:
        reason = check.flag()
        if reason is not None:
            summary["flags"] = [*summary.get("flags", []), reason]
            summary["valid"] = False
