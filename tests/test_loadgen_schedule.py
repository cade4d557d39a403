"""Tests of harness.loadgen.schedule (open-loop send times) and plan (client processes and
how a level splits into their shares), computed without a server."""

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.loadgen.level import LevelSpec
from harness.loadgen.plan import client_process_count, plan_shares, split_evenly
from harness.loadgen.schedule import arrival_offsets_ns

SAMPLES = 20_000


def gaps_s(offsets_ns):
    return np.diff(np.asarray(offsets_ns)) / 1e9


def test_schedule_starts_at_zero_and_ascends():
    offsets = arrival_offsets_ns(100, 10.0, "poisson", 1.0, (0, 1))

    assert offsets[0] == 0
    assert offsets == sorted(offsets)
    assert len(offsets) == 100


def test_schedule_reproducible_from_seed():
    first = arrival_offsets_ns(50, 10.0, "gamma", 0.5, (3, 7))

    assert arrival_offsets_ns(50, 10.0, "gamma", 0.5, (3, 7)) == first
    assert arrival_offsets_ns(50, 10.0, "gamma", 0.5, (3, 8)) != first


def test_schedule_prefix_is_stable():
    # Offsets are sums from the start, so a longer schedule of the same seed begins with the shorter one.
    assert arrival_offsets_ns(200, 5.0, "poisson", 1.0, (1,))[:50] == arrival_offsets_ns(50, 5.0, "poisson", 1.0, (1,))


def test_poisson_mean_gap():
    gaps = gaps_s(arrival_offsets_ns(SAMPLES, 50.0, "poisson", 1.0, (0,)))

    # mean 1 / 50 = 20 ms; the standard error is 20 ms / sqrt(20000) = 0.7 %
    assert gaps.mean() == pytest.approx(0.020, rel=0.03)
    # exponential: standard deviation equals the mean
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0])
def test_gamma_mean_gap(burstiness):
    gaps = gaps_s(arrival_offsets_ns(SAMPLES, 50.0, "gamma", burstiness, (0,)))

    # mean = shape x scale = k x 1 / (50 k) = 20 ms, whatever the burstiness
    assert gaps.mean() == pytest.approx(0.020, rel=0.05)


@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0])
def test_gamma_variation_follows_burstiness(burstiness):
    gaps = gaps_s(arrival_offsets_ns(SAMPLES, 50.0, "gamma", burstiness, (0,)))

    # squared coefficient of variation of a gamma distribution = 1 / shape
    assert (gaps.std() / gaps.mean()) ** 2 == pytest.approx(1 / burstiness, rel=0.1)


def test_schedule_rejects_unknown_arrival():
    with pytest.raises(ConfigError, match="'uniform'"):
        arrival_offsets_ns(10, 1.0, "uniform", 1.0, (0,))


def test_split_evenly_spreads_remainder():
    # 10 = 4 + 3 + 3
    assert split_evenly(10, 3) == [4, 3, 3]


def test_split_evenly_more_parts_than_total():
    assert split_evenly(2, 4) == [1, 1, 0, 0]


def make_spec(**overrides):
    values = dict(
        base_url="http://127.0.0.1:8000", model="tiny", endpoint="completions", isl=16, osl=100,
        concurrency=8, num_requests=30, warmup_requests=5, timeout_s=10.0, vocab_size=1000, seed=0,
        num_gpus=1, slo_ttft_ms=None, slo_itl_ms=None, slo_percentile=90,
    )
    values.update(overrides)
    return LevelSpec(**values)


def test_process_count_small_closed_level():
    assert client_process_count(make_spec(concurrency=256, num_requests=768), cpu_count=8) == 1


def test_process_count_large_closed_level():
    # ceil(1000 / 256) = 4
    assert client_process_count(make_spec(concurrency=1000, num_requests=3000), cpu_count=8) == 4


def test_process_count_limited_by_cpus():
    assert client_process_count(make_spec(concurrency=1000, num_requests=3000), cpu_count=2) == 2


def test_process_count_open_loop_by_events():
    # 100 requests/s x 1000 tokens = 100k events/s; ceil(100k / 40k) = 3
    spec = make_spec(concurrency=None, request_rate=100.0, osl=1000)

    assert client_process_count(spec, cpu_count=8) == 3


def test_process_count_explicit_capped_by_slots():
    assert client_process_count(make_spec(concurrency=4, num_requests=12, client_processes=8), cpu_count=8) == 4


def test_process_count_explicit_beats_cpus():
    assert client_process_count(make_spec(client_processes=3), cpu_count=1) == 3


def test_closed_plan_splits_slots_and_ids():
    shares = plan_shares(make_spec(concurrency=8, num_requests=30, warmup_requests=5), 3)

    # 8 = 3 + 3 + 2 slots; 30 = 10 + 10 + 10 measured; 5 = 2 + 2 + 1 warmup
    assert [share.concurrency for share in shares] == [3, 3, 2]
    assert [len(share.measured_ids) for share in shares] == [10, 10, 10]
    assert [len(share.warmup_ids) for share in shares] == [2, 2, 1]


def test_plan_ids_unique_and_complete():
    shares = plan_shares(make_spec(concurrency=8, num_requests=30, warmup_requests=5), 3)
    ids = [i for share in shares for i in share.warmup_ids + share.measured_ids]

    # warmup 0..4, measured 5..34
    assert sorted(ids) == list(range(35))


def test_open_plan_deals_one_schedule():
    spec = make_spec(concurrency=None, request_rate=20.0, num_requests=10, warmup_requests=2)
    shares = plan_shares(spec, 2)
    offsets = arrival_offsets_ns(12, 20.0, "poisson", 1.0, spec.seed_key)
    measured = [o - offsets[2] for o in offsets[2:]]

    assert shares[0].measured_ids == (2, 4, 6, 8, 10)
    assert shares[1].measured_ids == (3, 5, 7, 9, 11)
    assert shares[0].measured_offsets_ns == tuple(measured[0::2])
    assert shares[1].measured_offsets_ns == tuple(measured[1::2])
    assert shares[1].warmup_offsets_ns == (offsets[1],)


def test_open_plan_splits_cap():
    shares = plan_shares(make_spec(concurrency=5, request_rate=20.0), 2)

    # 5 = 3 + 2
    assert [share.concurrency for share in shares] == [3, 2]
