"""Tests of harness.loadgen.runner: whole levels against the fake server on 127.0.0.1, in
closed and open loop, with failures, and split across two client processes."""

import pytest
from loadgen_fake_server import FakeServer

from harness.errors import ConfigError
from harness.loadgen.runner import LevelProgress, LevelSpec, ValidityThresholds, run_level
from harness.loadgen.schedule import arrival_offsets_ns


@pytest.fixture(scope="module")
def server():
    fake = FakeServer()
    fake.start()
    yield fake
    fake.stop()


def make_spec(base_url, **overrides):
    values = dict(
        base_url=base_url,
        model="slow",
        endpoint="completions",
        isl=16,
        # 8 tokens at 5 ms each keep every request open for 40 ms or more.
        osl=8,
        concurrency=4,
        num_requests=12,
        warmup_requests=4,
        timeout_s=10.0,
        vocab_size=1000,
        seed=0,
        num_gpus=1,
        slo_ttft_ms=None,
        slo_itl_ms=None,
        slo_percentile=90,
        api_key="secret-key",
    )
    values.update(overrides)
    return LevelSpec(**values)


@pytest.fixture(scope="module")
def closed_level(server):
    # Barrier rounds of 4: every handler waits until 4 requests are in flight.
    server.reset(hold_until=4)
    calls = []
    result = run_level(make_spec(server.base_url, model="barrier", client_processes=1), progress=calls.append)
    return result, calls, list(server.bodies), list(server.authorizations), server.max_in_flight


def test_closed_loop_keeps_concurrency(closed_level):
    *_, max_in_flight = closed_level

    assert max_in_flight == 4


def test_closed_loop_records_warmup_then_measured(closed_level):
    result, *_ = closed_level

    assert [r.request_id for r in result.records] == list(range(16))
    assert [r.warmup for r in result.records] == [True] * 4 + [False] * 12
    assert len(result.frame) == 16


def test_closed_loop_summary(closed_level):
    result, *_ = closed_level

    assert result.summary["completed"] == 12
    assert result.summary["failed"] == 0
    assert result.summary["level"] == "c4"
    assert result.summary["flags"] == []
    assert result.summary["client_processes"] == 1
    # 12 requests, 4 slots: the steady state runs from the 4th to the 12th send
    assert result.summary["steady_state"]["duration_s"] > 0


def test_closed_loop_loop_lag_sampled(closed_level):
    result, *_ = closed_level

    assert len(result.loop_lag_ns) > 0
    assert result.summary["client_loop_lag_ms"]["max"] is not None


def test_progress_phases_and_final_call(closed_level):
    _, calls, *_ = closed_level

    assert {call.phase for call in calls} == {"warmup", "measure"}
    assert all(call.total == 4 for call in calls if call.phase == "warmup")
    assert calls[-1] == LevelProgress(
        done=12, total=12, in_flight=0, failed=0, output_tokens=96, elapsed_s=calls[-1].elapsed_s, phase="measure"
    )


def test_prompts_unique_prefix(closed_level):
    _, _, bodies, *_ = closed_level

    assert all(len(body["prompt"]) == 16 for body in bodies)
    assert len({tuple(body["prompt"][:8]) for body in bodies}) == 16


def test_runner_sends_bearer_key(closed_level):
    _, _, _, authorizations, _ = closed_level

    assert set(authorizations) == {"Bearer secret-key"}


def test_concurrency_1000_in_flight(server):
    # Handlers hold until 1000 are in flight, so the maximum reaches 1000 only if the
    # client really keeps 1000 open at once; 3000 requests make three full rounds.
    server.reset(hold_until=1000)
    spec = make_spec(
        server.base_url, model="barrier", isl=4, osl=2, concurrency=1000, num_requests=3000, warmup_requests=0,
        client_processes=1,
    )

    result = run_level(spec)

    assert server.max_in_flight == 1000
    assert result.summary["completed"] == 3000


def test_failures_are_data_and_level_completes(server):
    kinds = ["plain", "plain", "no_done", "disconnect", "midstream_error", "http429", "http500", "silent",
             "stall_after_token", "no_tokens"]
    server.reset(sequence=kinds)
    spec = make_spec(
        server.base_url, model="sequence", osl=4, concurrency=2, num_requests=10, warmup_requests=0,
        timeout_s=1.5, ttft_timeout_s=0.5,
    )

    result = run_level(spec)

    summary = result.summary
    assert summary["completed"] == 2
    assert summary["failed"] == 8
    assert summary["errors_by_type"] == {
        "incomplete_stream": 2, "stream_error": 1, "http_error": 2, "ttft_timeout": 1, "timeout": 1, "no_tokens": 1,
    }
    # 8 failed of 10
    assert summary["error_rate"] == pytest.approx(0.8)
    assert summary["flags"][0].startswith("error_rate 0.8 > 0.05")
    # failed requests stay out of the latency statistics: 2 successful TTFT samples
    assert summary["ttft_ms"]["p50"] is not None
    assert len(result.records) == 10


def test_short_output_flags_mismatch(server):
    server.reset()
    spec = make_spec(server.base_url, model="short", osl=6, concurrency=2, num_requests=6, warmup_requests=0)

    result = run_level(spec)

    # every request returns 6 - 2 = 4 tokens
    assert result.frame["osl_delta"].tolist() == [-2] * 6
    assert result.frame["osl_mismatch"].tolist() == [True] * 6
    assert result.summary["osl_mismatch"] == 6
    assert result.summary["valid"] is False
    assert "osl_mismatch 6/6 = 1 > 0.01" in result.summary["flags"]


def test_open_loop_follows_schedule(server):
    server.reset()
    spec = make_spec(
        server.base_url, model="plain", osl=2, concurrency=None, request_rate=200.0, num_requests=20,
        warmup_requests=2,
    )

    result = run_level(spec)

    measured = [r for r in result.records if not r.warmup]
    start = measured[0].scheduled_perf_ns
    offsets = arrival_offsets_ns(22, 200.0, "poisson", 1.0, spec.seed_key)
    # the measured part of one seeded schedule, shifted to start at 0
    assert [r.scheduled_perf_ns - start for r in measured] == [o - offsets[2] for o in offsets[2:]]
    assert all(r.send_perf_ns >= r.scheduled_perf_ns for r in measured)
    assert result.summary["level"] == "r200"
    assert result.summary["arrival"] == "poisson"


def test_open_loop_cap_raises_send_lag(server):
    server.reset()
    # 10 requests due within about 50 ms, one slot, and each request takes at least
    # 8 x 5 ms = 40 ms: the 10th cannot leave before 9 x 40 = 360 ms after the start.
    spec = make_spec(
        server.base_url, model="slow", concurrency=1, request_rate=200.0, num_requests=10, warmup_requests=0,
    )

    result = run_level(spec)

    lags_ms = [(r.send_perf_ns - r.scheduled_perf_ns) / 1e6 for r in result.records]
    assert lags_ms[-1] >= 300
    assert result.summary["send_lag_ms"]["max"] >= 300
    assert any(flag.startswith("send_lag_ms p99") for flag in result.summary["flags"])


def test_two_processes_closed_loop(server):
    # Rounds of 8 across both processes: the maximum reaches 8 only if 4 + 4 are in
    # flight together. The 8 warmup requests fill one round too.
    server.reset(hold_until=8)
    calls = []
    spec = make_spec(
        server.base_url, model="barrier", concurrency=8, num_requests=24, warmup_requests=8, client_processes=2
    )

    result = run_level(spec, progress=calls.append)

    assert server.max_in_flight == 8
    assert [r.request_id for r in result.records] == list(range(32))
    assert {r.client_process for r in result.records} == {0, 1}
    assert result.summary["completed"] == 24
    assert result.summary["client_processes"] == 2
    assert calls[-1].done == 24
    assert calls[-1].output_tokens == 24 * 8


def test_two_processes_open_loop_one_schedule(server):
    server.reset()
    spec = make_spec(
        server.base_url, model="plain", osl=2, concurrency=None, request_rate=100.0, num_requests=12,
        warmup_requests=0, client_processes=2,
    )

    result = run_level(spec)

    start = result.records[0].scheduled_perf_ns
    # both processes follow the one global schedule from a common start
    assert [r.scheduled_perf_ns - start for r in result.records] == arrival_offsets_ns(12, 100.0, "poisson", 1.0, spec.seed_key)
    assert [r.client_process for r in result.records] == [0, 1] * 6


def test_spec_repr_hides_key(server):
    assert "secret-key" not in repr(make_spec(server.base_url))


def test_spec_accepts_v1_base_url():
    spec = make_spec("http://127.0.0.1:8000/v1/", endpoint="chat")

    assert spec.url == "http://127.0.0.1:8000/v1/chat/completions"


def test_spec_rejects_too_few_requests():
    # 3 x 8 = 24 requests needed
    with pytest.raises(ConfigError, match=r"num_requests=20 is too small for concurrency=8.*3 x 8 = 24"):
        make_spec("http://127.0.0.1:8000", concurrency=8, num_requests=20)


def test_spec_open_loop_skips_request_minimum():
    spec = make_spec("http://127.0.0.1:8000", concurrency=64, request_rate=5.0, num_requests=10)

    assert spec.name == "r5_c64"


def test_spec_rejects_zero_concurrency():
    with pytest.raises(ConfigError, match="concurrency=0"):
        make_spec("http://127.0.0.1:8000", concurrency=0)


def test_spec_closed_loop_needs_concurrency():
    with pytest.raises(ConfigError, match="needs a concurrency"):
        make_spec("http://127.0.0.1:8000", concurrency=None)


def test_spec_rejects_unknown_endpoint():
    with pytest.raises(ConfigError, match="'embeddings'"):
        make_spec("http://127.0.0.1:8000", endpoint="embeddings")


def test_spec_rejects_zero_rate():
    with pytest.raises(ConfigError, match="request_rate=0"):
        make_spec("http://127.0.0.1:8000", request_rate=0.0)


def test_spec_rejects_burstiness_with_poisson():
    with pytest.raises(ConfigError, match="arrival='gamma'"):
        make_spec("http://127.0.0.1:8000", request_rate=5.0, burstiness=0.5)


def test_spec_accepts_config_enums():
    from harness.config.schema import ArrivalKind, EndpointKind

    spec = make_spec(
        "http://127.0.0.1:8000", endpoint=EndpointKind.chat, request_rate=5.0, arrival=ArrivalKind.gamma, burstiness=0.5
    )

    assert spec.arrival == "gamma"
    assert spec.endpoint == "chat"


def test_spec_validity_default():
    assert make_spec("http://127.0.0.1:8000").validity == ValidityThresholds()
