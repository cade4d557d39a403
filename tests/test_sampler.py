"""Prometheus text parsing, and the /metrics sampler against a simulated engine on 127.0.0.1."""

import asyncio
import json
import logging
import math
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pandas as pd
import pytest
from aiohttp import web
from omegaconf import OmegaConf

from harness.config import compose_config
from harness.loadgen.prometheus_text import ExpositionError, parse_exposition
from harness.loadgen.sampler import COLUMNS, METRIC_FIELDS, MetricsSampler, metrics_frame, read_metrics_frame
from harness.sim.app import ServerSettings, build_app
from harness.sim.model import StepCostModel
from harness.sim.prometheus import render_metrics
from harness.sim.scheduler import EngineLimits, SchedulerStats

MODEL = "meta-llama/Llama-3.1-8B-Instruct"

# Shaped like vLLM 0.10's /metrics with two data-parallel engines (prometheus_client output).
VLLM_TEXT = f"""\
# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{{generation="0"}} 12345.0
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="{MODEL}"}} 3.0
vllm:num_requests_running{{engine="1",model_name="{MODEL}"}} 2.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="{MODEL}"}} 7.0
vllm:num_requests_waiting{{engine="1",model_name="{MODEL}"}} 0.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{engine="0",model_name="{MODEL}"}} 0.25
vllm:kv_cache_usage_perc{{engine="1",model_name="{MODEL}"}} 0.5
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{{engine="0",model_name="{MODEL}"}} 1.2e+06
vllm:prompt_tokens_total{{engine="1",model_name="{MODEL}"}} 300000.0
# HELP vllm:prompt_tokens_created Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_created gauge
vllm:prompt_tokens_created{{engine="0",model_name="{MODEL}"}} 1.7297e+09
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.001",model_name="{MODEL}"}} 0.0
vllm:time_to_first_token_seconds_bucket{{engine="0",le="+Inf",model_name="{MODEL}"}} 5.0
vllm:time_to_first_token_seconds_count{{engine="0",model_name="{MODEL}"}} 5.0
vllm:time_to_first_token_seconds_sum{{engine="0",model_name="{MODEL}"}} 0.5
"""

# Shaped like SGLang's /metrics with two tensor-parallel ranks; counters without _total.
SGLANG_TEXT = """\
# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{engine_type="unified",model_name="deepseek-ai/DeepSeek-R1",tp_rank="0"} 12.0
sglang:num_running_reqs{engine_type="unified",model_name="deepseek-ai/DeepSeek-R1",tp_rank="1"} 12.0
# HELP sglang:num_queue_reqs The number of requests in the waiting queue.
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{engine_type="unified",model_name="deepseek-ai/DeepSeek-R1",tp_rank="0"} 4.0
# HELP sglang:generation_tokens Number of generation tokens processed.
# TYPE sglang:generation_tokens counter
sglang:generation_tokens{model_name="deepseek-ai/DeepSeek-R1"} 2.5e+05
"""

FAST_COST = StepCostModel(
    step_overhead_us=1000.0, prefill_us_per_token=0.0, decode_us_per_seq=0.0, context_us_per_token=0.0
)
SIM_MODEL = "tiny"
# Scrapes every 50 ms, so a test of well under a second gets several.
FAST_INTERVAL_S = 0.05


def test_parse_vllm_sums_engines():
    exposition = parse_exposition(VLLM_TEXT)

    running = exposition.total("vllm:num_requests_running")
    # 3.0 + 2.0 from engines 0 and 1.
    assert running.value == 5.0
    assert running.series == 2
    # 0.25 + 0.5: the sum over engines, which series = 2 turns back into a mean.
    assert exposition.total("vllm:kv_cache_usage_perc").value == 0.75


def test_parse_vllm_counter_without_suffix():
    total = parse_exposition(VLLM_TEXT).total("vllm:prompt_tokens")

    assert total.name == "vllm:prompt_tokens_total"
    # 1.2e6 + 300000 = 1.5e6
    assert total.value == 1_500_000.0


def test_parse_sglang_counter_with_suffix():
    total = parse_exposition(SGLANG_TEXT).total("sglang:generation_tokens_total")

    assert total.name == "sglang:generation_tokens"
    assert total.value == 250_000.0
    # 12 running requests on each of the two ranks.
    assert parse_exposition(SGLANG_TEXT).total("sglang:num_running_reqs").value == 24.0


def test_parse_help_and_type():
    exposition = parse_exposition(VLLM_TEXT)

    assert exposition.types["vllm:time_to_first_token_seconds"] == "histogram"
    assert exposition.types["vllm:prompt_tokens_total"] == "counter"
    assert exposition.help["vllm:kv_cache_usage_perc"] == "KV-cache usage. 1 means 100 percent usage."
    # Sample lines: 1 gc counter + 4 metrics x 2 engines + 1 created gauge + 4 histogram
    # lines = 14; HELP and TYPE lines are not samples.
    assert len(exposition.samples) == 14


def test_parse_missing_metric_is_none():
    assert parse_exposition(VLLM_TEXT).total("vllm:gpu_cache_usage_perc") is None


def test_parse_label_escapes():
    text = 'm{path="C:\\\\dir",quote="say \\"hi\\"",lines="a\\nb",brace="}{,="} 1\n'

    (sample,) = parse_exposition(text).samples

    assert sample.labels == {"path": "C:\\dir", "quote": 'say "hi"', "lines": "a\nb", "brace": "}{,="}


def test_parse_special_values():
    text = "a +Inf\nb -Inf\nc NaN\nd 1.5e-3\n"

    values = {sample.name: sample.value for sample in parse_exposition(text).samples}

    assert values["a"] == math.inf
    assert values["b"] == -math.inf
    assert math.isnan(values["c"])
    assert values["d"] == 0.0015


def test_parse_timestamps():
    text = 'ms{a="1"} 4 1700000000123\nopenmetrics 5 1700000000.5\nnone 6\n'

    stamps = {sample.name: sample.timestamp_ms for sample in parse_exposition(text).samples}

    assert stamps == {"ms": 1_700_000_000_123, "openmetrics": 1_700_000_000_500, "none": None}


def test_parse_whitespace_crlf_and_trailing_comma():
    text = '# a comment\r\n\r\n  spaced { a = "1" , b="2", }   8  \r\n# EOF\r\n'

    (sample,) = parse_exposition(text).samples

    assert (sample.name, sample.labels, sample.value) == ("spaced", {"a": "1", "b": "2"}, 8.0)


def test_parse_openmetrics_exemplar():
    text = 'latency_bucket{le="0.5"} 17 # {trace_id="4bf92f"} 0.43 1700000000.1\n'

    (sample,) = parse_exposition(text).samples

    assert sample.value == 17.0
    assert sample.timestamp_ms is None


def test_parse_quoted_metric_name():
    text = '{"http.server.duration", method="GET"} 3\n{"only.name"} 4\n'

    samples = parse_exposition(text).samples

    assert [(s.name, s.labels, s.value) for s in samples] == [
        ("http.server.duration", {"method": "GET"}, 3.0),
        ("only.name", {}, 4.0),
    ]


@pytest.mark.parametrize(
    "line, reason",
    [
        ('m{a="1"', "closing brace"),
        ('m{a="1} 2', "closing quote"),
        ("m{a=1} 2", "not quoted"),
        ("m", "expected a value"),
        ("m one", "not a number"),
        ("m 1 2 3", "expected a value"),
        ("m 1 soon", "timestamp"),
        ('{a="1"} 2', "no metric name"),
    ],
)
def test_parse_invalid_line(line, reason):
    with pytest.raises(ExpositionError, match=reason) as caught:
        parse_exposition("ok 1\n" + line + "\n")

    assert caught.value.line_number == 2


def test_parse_sim_exposition():
    stats = SchedulerStats(
        num_requests_waiting=2, num_requests_running=3, kv_used_tokens=250, kv_capacity_tokens=1000,
        prompt_tokens_total=640, generation_tokens_total=80, request_success_total=10,
        steps_total=99, schedule_resets_total=0,
    )
    exposition = parse_exposition(render_metrics(stats, 'model "quoted" \\ name'))

    assert exposition.total("sim:num_requests_waiting").value == 2.0
    assert exposition.total("sim:kv_cache_usage_perc").value == 0.25
    assert exposition.total("sim:generation_tokens").value == 80.0
    assert exposition.samples[0].labels == {"model_name": 'model "quoted" \\ name', "role": "aggregated"}


@pytest.fixture
def sim_url() -> Iterator[str]:
    """Serve the simulated engine on 127.0.0.1 from an event loop in a background thread."""
    settings = ServerSettings(
        model_name=SIM_MODEL,
        context_length=4096,
        cost=FAST_COST,
        limits=EngineLimits(max_running_requests=256, chunked_prefill_size=8192, kv_capacity_tokens=100_000),
    )
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(build_app(settings), handler_cancellation=True)

    async def start() -> int:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner.addresses[0][1]

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def sim_metric_names() -> dict:
    return OmegaConf.to_container(compose_config(["engine=sim"]).cfg.engine.metrics)


def complete(url: str, prompt_tokens: int, max_tokens: int) -> None:
    payload = {"model": SIM_MODEL, "prompt": [7] * prompt_tokens, "max_tokens": max_tokens, "stream": True}
    request = urllib.request.Request(
        url + "/v1/completions", data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sampler_rows_for_each_metric(sim_url):
    sampler = MetricsSampler([("aggregated-0", sim_url + "/metrics")], sim_metric_names(), interval_s=FAST_INTERVAL_S)
    with sampler:
        sampler.start("c2")
        complete(sim_url, prompt_tokens=12, max_tokens=5)
        complete(sim_url, prompt_tokens=20, max_tokens=3)
        frame = sampler.stop()

    assert list(frame.columns) == list(COLUMNS)
    assert set(frame["metric"]) == set(METRIC_FIELDS)
    assert set(frame["level"]) == {"c2"}
    assert set(frame["worker"]) == {"aggregated-0"}
    assert sampler.failures == {"aggregated-0": 0}
    for metric, rows in frame.groupby("metric"):
        # One scrape at start and one at stop at least.
        assert len(rows) >= 2, metric
        assert rows["perf_ns"].is_monotonic_increasing, metric
        assert set(rows["series"]) == {1}, metric

    last = frame.groupby("metric").last()
    # 12 + 20 prompt tokens and 5 + 3 generated tokens; both requests ended before stop().
    assert last.loc["prompt_tokens_total", "value"] == 32.0
    assert last.loc["generation_tokens_total", "value"] == 8.0
    assert last.loc["running_requests", "value"] == 0.0
    assert last.loc["queue_depth", "name"] == "sim:num_requests_waiting"


def test_sampler_skips_null_names(sim_url):
    names = {**sim_metric_names(), "kv_usage": None, "queue_depth": None}
    with MetricsSampler([("w", sim_url + "/metrics")], names, interval_s=FAST_INTERVAL_S) as sampler:
        sampler.start("c1")
        frame = sampler.stop()

    assert set(frame["metric"]) == {
        "running_requests", "prompt_tokens_total", "generation_tokens_total", "busy_seconds_total",
    }


def test_sampler_levels_apart(sim_url):
    with MetricsSampler([("w", sim_url + "/metrics")], sim_metric_names(), interval_s=FAST_INTERVAL_S) as sampler:
        sampler.start("c1")
        first = sampler.stop()
        sampler.start("c4")
        second = sampler.stop()

    assert set(first["level"]) == {"c1"}
    assert set(second["level"]) == {"c4"}


def test_sampler_missing_metric_warns_once(sim_url, caplog):
    names = {"kv_usage": "vllm:kv_cache_usage_perc", "running_requests": "sim:num_requests_running"}
    with MetricsSampler([("w", sim_url + "/metrics")], names, interval_s=FAST_INTERVAL_S) as sampler:
        with caplog.at_level(logging.WARNING, logger="harness.loadgen.sampler"):
            sampler.start("c1")
            time.sleep(0.3)
            frame = sampler.stop()

    assert set(frame["metric"]) == {"running_requests"}
    missing = [record for record in caplog.records if "not found" in record.getMessage()]
    assert len(missing) == 1
    assert "engine.metrics.kv_usage" in missing[0].getMessage()


def test_sampler_failed_scrapes_warn_once(caplog):
    url = f"http://127.0.0.1:{free_port()}/metrics"
    with MetricsSampler([("dead", url)], sim_metric_names(), interval_s=FAST_INTERVAL_S) as sampler:
        with caplog.at_level(logging.WARNING, logger="harness.loadgen.sampler"):
            sampler.start("c1")
            time.sleep(0.3)
            frame = sampler.stop()

    assert frame.empty
    assert list(frame.columns) == list(COLUMNS)
    # The start scrape and the stop scrape at least, all refused.
    assert sampler.failures["dead"] >= 2
    first_failures = [record for record in caplog.records if "failed:" in record.getMessage()]
    assert len(first_failures) == 1
    totals = [record for record in caplog.records if "scrapes of /metrics failed" in record.getMessage()]
    assert len(totals) == 1


def test_sampler_start_twice_raises(sim_url):
    with MetricsSampler([("w", sim_url + "/metrics")], sim_metric_names()) as sampler:
        sampler.start("c1")
        with pytest.raises(RuntimeError, match="already sampling level c1"):
            sampler.start("c2")
        sampler.stop()


def test_metrics_frame_empty_roundtrip(tmp_path):
    path = tmp_path / "server_metrics.parquet"
    metrics_frame([]).to_parquet(path, index=False)

    frame = pd.read_parquet(path)

    assert list(frame.columns) == list(COLUMNS)
    assert str(frame["wall_ns"].dtype) == "int64"


def test_read_metrics_frame_keeps_levels(tmp_path):
    path = tmp_path / "server_metrics.parquet"
    row = {"worker": "w", "wall_ns": 1, "perf_ns": 2, "metric": "kv_usage", "name": "k", "value": 0.5, "series": 1}
    metrics_frame([{**row, "level": "c1"}, {**row, "level": "c2"}, {**row, "level": "c4"}]).to_parquet(path)

    kept = read_metrics_frame(path, ["c1", "c4"])

    assert list(kept["level"]) == ["c1", "c4"]


def test_read_metrics_frame_missing_file(tmp_path):
    assert read_metrics_frame(tmp_path / "absent.parquet", ["c1"]).empty
