"""Worker choice and KV transfer time of the simulated engine's router: pure arithmetic."""

import pytest

from harness.errors import ConfigError
from harness.sim.router.pool import Policy, WorkerPool
from harness.sim.router.transfer import KvTransferModel


def test_transfer_time_bandwidth_and_latency():
    model = KvTransferModel(kv_bytes_per_token=70_000, bandwidth_gbps=10.0, latency_us=50.0)
    # 1000 tokens * 70_000 bytes / 10 GB/s = 7_000_000 ns, + 50 us = 7_050_000 ns
    assert model.transfer_ns(1000) == 7_050_000


def test_transfer_time_zero_bytes_is_latency():
    model = KvTransferModel(kv_bytes_per_token=0, bandwidth_gbps=1.0, latency_us=250.0)
    assert model.transfer_ns(8192) == 250_000


def test_transfer_rejects_zero_bandwidth():
    with pytest.raises(ConfigError, match="bandwidth must be > 0 GB/s"):
        KvTransferModel(kv_bytes_per_token=1, bandwidth_gbps=0.0, latency_us=0.0)


def test_round_robin_ignores_load():
    pool = WorkerPool("prefill", ["a", "b", "c"], Policy.ROUND_ROBIN)
    assert [pool.acquire() for _ in range(4)] == ["a", "b", "c", "a"]
    assert pool.in_flight == {"a": 2, "b": 1, "c": 1}


def test_least_loaded_prefers_fewest_in_flight():
    pool = WorkerPool("decode", ["a", "b"], Policy.LEAST_LOADED)
    assert pool.acquire() == "a"
    assert pool.acquire() == "b"
    # Both have 1 in flight, so the tie goes to the first worker after the last choice (b).
    assert pool.acquire() == "a"
    pool.release("b")
    # a has 2 in flight, b has 0.
    assert pool.acquire() == "b"
    assert pool.acquire() == "b"


def test_least_loaded_idle_workers_take_turns():
    pool = WorkerPool("prefill", ["a", "b"], Policy.LEAST_LOADED)
    chosen = []
    for _ in range(4):
        url = pool.acquire()
        chosen.append(url)
        pool.release(url)
    assert chosen == ["a", "b", "a", "b"]


def test_pool_rejects_empty_url_list():
    with pytest.raises(ValueError, match="needs at least one worker URL"):
        WorkerPool("decode", [], Policy.ROUND_ROBIN)
