"""Step-time arithmetic and prefill chunk planning of the simulated engine."""

import pytest

from harness.config.schema import SimProfile
from harness.errors import ConfigError
from harness.sim.model import StepCostModel, plan_prefill_chunks

COST = StepCostModel(
    step_overhead_us=2000.0,
    prefill_us_per_token=1.5,
    decode_us_per_seq=100.0,
    context_us_per_token=0.01,
)


def test_step_time_overhead_only():
    assert COST.step_time_us(prefill_tokens=0, decode_seqs=0, decode_context_tokens=0) == 2000.0


def test_step_time_prefill_only():
    # 2000 + 1.5 * 4096 = 2000 + 6144 = 8144
    assert COST.step_time_us(prefill_tokens=4096, decode_seqs=0, decode_context_tokens=0) == 8144.0


def test_step_time_mixed_batch():
    # 2000 + 1.5 * 100 + 100 * 8 + 0.01 * 10000 = 2000 + 150 + 800 + 100 = 3050
    step_us = COST.step_time_us(prefill_tokens=100, decode_seqs=8, decode_context_tokens=10000)
    assert step_us == pytest.approx(3050.0)


def test_cost_model_from_profile_defaults():
    cost = StepCostModel.from_profile(SimProfile())
    # 2000 + 10.0 * 10 + 20 * 2 + 0.05 * 1000 = 2000 + 100 + 40 + 50 = 2190
    assert cost.step_time_us(10, 2, 1000) == pytest.approx(2190.0)


def test_cost_model_rejects_negative():
    with pytest.raises(ConfigError, match="decode_us_per_seq"):
        StepCostModel(
            step_overhead_us=0, prefill_us_per_token=0, decode_us_per_seq=-1, context_us_per_token=0
        )


def test_cost_model_rejects_nan():
    with pytest.raises(ConfigError, match="step_overhead_us"):
        StepCostModel(
            step_overhead_us=float("nan"),
            prefill_us_per_token=0,
            decode_us_per_seq=0,
            context_us_per_token=0,
        )


def test_chunks_fit_in_budget():
    assert plan_prefill_chunks([100, 200], chunked_prefill_size=8192) == [100, 200]


def test_chunks_first_come_first_served():
    # The first request takes 3000 of 4096, the second the remaining 1096, the third none.
    assert plan_prefill_chunks([3000, 5000, 10], chunked_prefill_size=4096) == [3000, 1096, 0]


def test_chunks_long_prompt_spans_steps():
    # A 10000-token prompt with a 4096 budget: 4096, then 4096, then 10000 - 8192 = 1808.
    remaining = 10000
    chunks = []
    while remaining:
        (chunk,) = plan_prefill_chunks([remaining], chunked_prefill_size=4096)
        chunks.append(chunk)
        remaining -= chunk
    assert chunks == [4096, 4096, 1808]


def test_chunks_reject_zero_budget():
    with pytest.raises(ConfigError, match="chunked_prefill_size"):
        plan_prefill_chunks([1], chunked_prefill_size=0)
