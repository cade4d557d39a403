"""Load levels of a config as LevelSpecs, and the API key read from the environment."""

import pytest

from harness.config import compose_config
from harness.errors import ConfigError
from harness.loadgen.levels import api_key_from_env, level_names, level_specs
from harness.loadgen.runner import ValidityThresholds

URL = "http://127.0.0.1:8000"


def specs(*overrides: str, num_gpus: int = 1, api_key: str | None = None):
    cfg = compose_config(list(overrides)).cfg
    return level_specs(cfg, URL, num_gpus, api_key)


def test_levels_closed_loop():
    levels = specs("bench.concurrency=[1,4]", "bench.requests_per_level=12", num_gpus=8)

    assert [name for name, _ in levels] == ["c1", "c4"]
    spec = levels[1][1]
    assert spec.concurrency == 4
    assert spec.request_rate is None
    assert spec.num_requests == 12
    assert spec.base_url == URL
    assert spec.num_gpus == 8
    # workload 1k1k: ISL 1024, OSL 1024, token-id prompts on /v1/completions.
    assert (spec.isl, spec.osl, spec.endpoint) == (1024, 1024, "completions")


def test_levels_lengths_from_mode():
    (_, spec), *_ = specs("mode=prefill", "workload.isl=4096")

    # mode=prefill keeps the workload's ISL and sets OSL 5.
    assert (spec.isl, spec.osl) == (4096, 5)


def test_levels_open_loop():
    levels = specs("bench.request_rate=[2.5,4]")

    assert [name for name, _ in levels] == ["r2.5", "r4"]
    spec = levels[0][1]
    assert spec.request_rate == 2.5
    assert spec.concurrency is None
    assert spec.arrival == "poisson"


def test_levels_open_loop_capped_gamma():
    levels = specs(
        "bench.request_rate=[2.5]", "bench.max_concurrency=8", "bench.arrival=gamma", "bench.burstiness=0.5"
    )

    ((name, spec),) = levels
    assert name == "r2.5_c8"
    assert spec.concurrency == 8
    assert (spec.arrival, spec.burstiness) == ("gamma", 0.5)


def test_levels_bench_settings():
    (_, spec), *_ = specs(
        "bench.validity.max_error_rate=0.2", "bench.validity.max_loop_lag_ms=50", "bench.ttft_timeout_s=30",
        "bench.client_processes=2", "bench.slo.ttft_ms=2000", "bench.seed=7", "model.vocab_size=1000",
    )

    assert spec.validity == ValidityThresholds(
        max_error_rate=0.2, max_mismatch_rate=0.01, max_send_lag_ms=10.0, max_loop_lag_ms=50.0
    )
    assert spec.ttft_timeout_s == 30.0
    assert spec.client_processes == 2
    assert spec.slo_ttft_ms == 2000.0
    assert spec.seed == 7
    assert spec.vocab_size == 1000


def test_levels_model_from_endpoint():
    (_, served), *_ = specs("model.served_name=tiny")
    (_, endpoint), *_ = specs("model.served_name=tiny", "endpoint.model=llama")

    assert served.model == "tiny"
    assert endpoint.model == "llama"


def test_levels_api_key_hidden():
    (_, spec), *_ = specs(api_key="sk-secret-123")

    assert spec.api_key == "sk-secret-123"
    assert "sk-secret-123" not in repr(spec)


def test_levels_duplicate_rejected():
    with pytest.raises(ConfigError, match="bench.concurrency lists level c4 twice"):
        specs("bench.concurrency=[4,4]")


def test_level_names_without_url():
    cfg = compose_config(["bench.request_rate=[1,0.5]", "bench.max_concurrency=16"]).cfg

    assert level_names(cfg) == ["r1_c16", "r0.5_c16"]


def test_api_key_env_unset_is_none():
    assert api_key_from_env(compose_config([]).cfg) is None


def test_api_key_env_read(monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_KEY", "sk-secret-123")

    cfg = compose_config(["endpoint.api_key_env=HARNESS_TEST_KEY"]).cfg

    assert api_key_from_env(cfg) == "sk-secret-123"


def test_api_key_env_missing(monkeypatch):
    monkeypatch.delenv("HARNESS_TEST_KEY", raising=False)
    cfg = compose_config(["endpoint.api_key_env=HARNESS_TEST_KEY"]).cfg

    with pytest.raises(ConfigError, match="HARNESS_TEST_KEY .endpoint.api_key_env. is not set"):
        api_key_from_env(cfg)


def test_api_key_env_empty(monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_KEY", "  ")
    cfg = compose_config(["endpoint.api_key_env=HARNESS_TEST_KEY"]).cfg

    with pytest.raises(ConfigError, match="HARNESS_TEST_KEY .endpoint.api_key_env. is empty"):
        api_key_from_env(cfg)
