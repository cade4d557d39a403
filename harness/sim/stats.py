"""Counters and gauges of the simulated engine's scheduler at one moment."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SchedulerStats:
    num_requests_waiting: int
    num_requests_running: int
    kv_used_tokens: int
    kv_capacity_tokens: int
    prompt_tokens_total: int
    generation_tokens_total: int
    request_success_total: int
    steps_total: int
    schedule_resets_total: int
    # Sum of the modelled step times, so a step that ran late counts only its modelled time.
    busy_ns_total: int = 0
    # Finished prefill requests whose KV stays reserved for the hand-off, and the
    # reservations that their timeout freed.
    num_requests_kv_held: int = 0
    kv_hold_timeouts_total: int = 0

    @property
    def busy_seconds_total(self) -> float:
        return self.busy_ns_total / 1e9

    @property
    def kv_cache_usage_perc(self) -> float:
        """Reserved fraction of the KV cache, 0 to 1 (named like vLLM's gauge)."""
        return self.kv_used_tokens / self.kv_capacity_tokens
