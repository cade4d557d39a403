"""Time to move a prompt's KV cache from a prefill worker to a decode worker."""

from dataclasses import dataclass

from harness.errors import ConfigError


@dataclass(frozen=True)
class KvTransferModel:
    """Transfer time = prompt tokens * kv_bytes_per_token / bandwidth + latency.

    bandwidth_gbps is in GB/s (10^9 bytes per second), so bytes / bandwidth_gbps is the
    bandwidth term in nanoseconds.
    """

    kv_bytes_per_token: int
    bandwidth_gbps: float
    latency_us: float

    def __post_init__(self) -> None:
        if not self.kv_bytes_per_token >= 0:
            raise ConfigError(
                f"kv_bytes_per_token must be an integer >= 0, got {self.kv_bytes_per_token!r}"
            )
        if not self.bandwidth_gbps > 0:
            raise ConfigError(
                f"KV transfer bandwidth must be > 0 GB/s, got {self.bandwidth_gbps!r}"
            )
        if not self.latency_us >= 0:
            raise ConfigError(
                f"KV transfer latency must be >= 0 microseconds, got {self.latency_us!r}"
            )

    def transfer_ns(self, prompt_tokens: int) -> int:
        """Compute the transfer time of prompt_tokens tokens of KV, in nanoseconds."""
        bandwidth_ns = prompt_tokens * self.kv_bytes_per_token / self.bandwidth_gbps
        return round(bandwidth_ns + self.latency_us * 1000)
