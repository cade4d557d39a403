"""Step-time cost model of the simulated engine: pure arithmetic, no clock and no I/O.

One engine step runs a chunk of prefill tokens plus one decode token for each running
request whose prompt is fully prefilled. Its duration in microseconds is

    step_overhead_us
    + prefill_us_per_token * prefill tokens
    + decode_us_per_seq * decode sequences
    + context_us_per_token * context tokens of the decode sequences

where a decode sequence's context is its prompt plus the tokens it has generated so far,
which is the KV cache that the step's attention reads.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from harness.config.schema import SimProfile
from harness.errors import ConfigError


@dataclass(frozen=True)
class StepCostModel:
    """Costs of one engine step, in microseconds."""

    step_overhead_us: float
    prefill_us_per_token: float
    decode_us_per_seq: float
    context_us_per_token: float

    def __post_init__(self) -> None:
        names = (
            "step_overhead_us", "prefill_us_per_token", "decode_us_per_seq", "context_us_per_token"
        )
        for name in names:
            value = getattr(self, name)
            if not value >= 0:
                raise ConfigError(f"{name} must be a number >= 0 (microseconds), got {value!r}")

    @classmethod
    def from_profile(cls, profile: SimProfile) -> "StepCostModel":
        return cls(
            step_overhead_us=profile.step_overhead_us,
            prefill_us_per_token=profile.prefill_us_per_token,
            decode_us_per_seq=profile.decode_us_per_seq,
            context_us_per_token=profile.context_us_per_token,
        )

    def step_time_us(
        self, prefill_tokens: int, decode_seqs: int, decode_context_tokens: int
    ) -> float:
        """Compute the duration of a step with the given work, in microseconds."""
        return (
            self.step_overhead_us
            + self.prefill_us_per_token * prefill_tokens
            + self.decode_us_per_seq * decode_seqs
            + self.context_us_per_token * decode_context_tokens
        )


def plan_prefill_chunks(
    remaining_prompt_tokens: Sequence[int], chunked_prefill_size: int
) -> list[int]:
    """Split one step's prefill budget over requests in first-come, first-served order.

    remaining_prompt_tokens lists, oldest request first, the prompt tokens that each
    request still has to prefill. The result gives the tokens that each one prefills in
    this step: earlier requests take all they need before later ones get anything, and a
    prompt longer than the budget spans several steps.
    """
    if chunked_prefill_size < 1:
        raise ConfigError(f"chunked_prefill_size must be >= 1, got {chunked_prefill_size}")

    budget = chunked_prefill_size
    chunks: list[int] = []
    for remaining in remaining_prompt_tokens:
        chunk = min(remaining, budget)
        chunks.append(chunk)
        budget -= chunk
    return chunks
