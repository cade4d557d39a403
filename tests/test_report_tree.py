"""A synthetic disaggregated point on disk, and the rate matching computed from it.

write_disagg_point() is also used by test_report.py. The point runs 1 prefill and 2
decode workers of 2 GPUs each (tp=2), at ISL 1000 and OSL 100, with
max_running_requests 64, and two levels: c4 (valid) and c8 (invalid).
"""

import json
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from harness.config.schema import HarnessConfig, ModeName
from harness.loadgen.sampler import metrics_frame
from harness.report.ratematch import CapacitySource, ClientLevel, PoolShape, rate_match
from harness.report.server_metrics import read_server_metrics
from harness.results.collect import collect

ISL = 1000
OSL = 100
BASE_NS = 1_000_000_000_000
S = 1_000_000_000

# (worker, metric, [(seconds after the level's first scrape, value), ...]) per level.
# The router's counter must not count in any pool.
LEVEL_SERIES = {
    "c4": [
        ("prefill-0", "prompt_tokens_total", [(0, 0), (1, 6000), (2, 12000)]),
        ("prefill-0", "busy_seconds_total", [(0, 0), (1, 0.5), (2, 1.0)]),
        ("prefill-0", "queue_depth", [(0, 0), (1, 3), (2, 0)]),
        ("decode-0", "generation_tokens_total", [(0, 0), (1, 200), (2, 400)]),
        ("decode-0", "running_requests", [(0, 0), (1, 16), (2, 0)]),
        ("decode-1", "generation_tokens_total", [(0, 0), (1, 150), (2, 350), (2.5, 500)]),
        ("decode-1", "running_requests", [(0, 0), (1, 20), (2, 12), (2.5, 0)]),
        ("router-0", "prompt_tokens_total", [(0, 0), (2, 99999)]),
    ],
    "c8": [
        ("prefill-0", "prompt_tokens_total", [(0, 0), (1, 10000), (2, 20000)]),
        ("prefill-0", "busy_seconds_total", [(0, 0), (1, 0.9), (2, 1.6)]),
        ("prefill-0", "queue_depth", [(0, 0), (1, 7), (2, 0)]),
        ("decode-0", "generation_tokens_total", [(0, 0), (1, 300), (2, 600)]),
        ("decode-0", "running_requests", [(0, 0), (1, 30), (2, 0)]),
        ("decode-1", "generation_tokens_total", [(0, 0), (1, 300), (2, 600)]),
        ("decode-1", "running_requests", [(0, 0), (1, 40), (2, 0)]),
        ("router-0", "prompt_tokens_total", [(0, 0), (2, 99999)]),
    ],
}

# The client's view: (concurrency, requests/s, input tok/s, output tok/s, valid).
CLIENT = {
    "c4": (4, 4.0, 5000.0, 380.0, True),
    "c8": (8, 5.5, 9000.0, 580.0, False),
}

PROMETHEUS_NAMES = {
    "prompt_tokens_total": "sim:prompt_tokens_total",
    "generation_tokens_total": "sim:generation_tokens_total",
    "busy_seconds_total": "sim:busy_seconds_total",
    "queue_depth": "sim:num_requests_waiting",
    "running_requests": "sim:num_requests_running",
}


def stats(value: float) -> dict:
    return {"mean": value, "std": 0.0, "min": value, "max": value,
            "p50": value, "p90": value * 1.5, "p95": value * 1.5, "p99": value * 2}


def disagg_summary(level: str) -> dict:
    concurrency, rps, input_tps, output_tps, valid = CLIENT[level]
    gpus = 6
    return {
        "level": level, "concurrency": concurrency, "request_rate": None, "num_gpus": gpus,
        "target_isl": ISL, "target_osl": OSL, "warmup_requests": 0,
        "completed": 40, "failed": 0 if valid else 4, "error_rate": 0.0 if valid else 0.09,
        "duration_s": 10.0,
        "request_throughput_rps": rps, "input_throughput_tps": input_tps,
        "output_throughput_tps": output_tps, "total_throughput_tps": input_tps + output_tps,
        "request_throughput_rps_per_gpu": rps / gpus, "input_throughput_tps_per_gpu": input_tps / gpus,
        "output_throughput_tps_per_gpu": output_tps / gpus,
        "total_throughput_tps_per_gpu": (input_tps + output_tps) / gpus,
        "interactivity_tps_per_user": 100.0 / concurrency, "goodput_rps": rps,
        "ttft_ms": stats(100.0 * concurrency), "tpot_ms": stats(10.0), "itl_ms": stats(10.0),
        "e2e_ms": stats(1000.0), "isl_mismatch": 0, "osl_mismatch": 0,
        "valid": valid, "flags": [] if valid else ["error_rate 0.09 > 0.05"],
    }


def disagg_metrics() -> pd.DataFrame:
    rows = []
    for level_index, (level, series) in enumerate(LEVEL_SERIES.items()):
        level_start_ns = BASE_NS + level_index * 10 * S
        for worker, metric, samples in series:
            for seconds, value in samples:
                perf_ns = level_start_ns + int(seconds * S)
                rows.append({"level": level, "worker": worker, "wall_ns": perf_ns, "perf_ns": perf_ns,
                             "metric": metric, "name": PROMETHEUS_NAMES[metric],
                             "value": float(value), "series": 1})
    return metrics_frame(rows)


def write_disagg_point(sweep_dir: Path, point_id: str = "disagg0001") -> Path:
    """Write config.yaml, status.json, two levels' summary.json and server_metrics.parquet."""
    config = OmegaConf.structured(HarnessConfig)
    config.mode.name = ModeName.disagg
    config.mode.prefill_workers = 1
    config.mode.decode_workers = 2
    config.parallelism.tp = 2
    config.workload.isl = ISL
    config.workload.osl = OSL
    config.engine.args = {"max_running_requests": 64}

    point_dir = sweep_dir / point_id
    point_dir.mkdir(parents=True)
    (point_dir / "config.yaml").write_text(OmegaConf.to_yaml(config))
    status = {"point_id": point_id, "state": "done", "levels_done": list(CLIENT)}
    (point_dir / "status.json").write_text(json.dumps(status))
    for level in CLIENT:
        level_dir = point_dir / "levels" / level
        level_dir.mkdir(parents=True)
        (level_dir / "summary.json").write_text(json.dumps(disagg_summary(level)))
    disagg_metrics().to_parquet(point_dir / "server_metrics.parquet", index=False)
    return point_dir


SHAPE = PoolShape(isl=ISL, osl=OSL, prefill_workers=1, decode_workers=2, gpus_per_worker=2,
                  decode_batch_limit=64)


def client_levels() -> list[ClientLevel]:
    return [
        ClientLevel(level, float(concurrency), valid, rps, input_tps, output_tps)
        for level, (concurrency, rps, input_tps, output_tps, valid) in CLIENT.items()
    ]


@pytest.fixture
def tree_levels(tmp_path):
    point_dir = write_disagg_point(tmp_path / "disagg_exp" / "20260101-000000")
    metrics = read_server_metrics(point_dir / "server_metrics.parquet")
    return {level.level: level for level in rate_match(SHAPE, client_levels(), metrics).levels}


def test_tree_collects_as_disagg(tmp_path):
    write_disagg_point(tmp_path / "disagg_exp" / "20260101-000000")
    frame = collect([tmp_path])
    assert list(frame["level"]) == ["c4", "c8"]
    assert set(frame["mode.name"]) == {"disagg"}
    assert list(frame["gpus_per_worker"]) == [2, 2]


def test_tree_client_rates(tree_levels):
    c4 = tree_levels["c4"]
    assert c4.achieved_rps == 4.0
    # 5000 input tok/s / ISL 1000 = 5.0; 380 output tok/s / OSL 100 = 3.8.
    assert c4.client_input_rps == pytest.approx(5.0)
    assert c4.client_output_rps == pytest.approx(3.8)


def test_tree_prefill_pool_c4(tree_levels):
    c4 = tree_levels["c4"]
    # prefill-0: 12000 prompt tokens in 2 s = 6000 tok/s; the router's 99999 do not count.
    assert c4.prefill_input_tps == pytest.approx(6000.0)
    # 6000 / ISL 1000 = 6 requests/s.
    assert c4.prefill_input_rps == pytest.approx(6.0)
    # 12000 prompt tokens / 1.0 busy seconds = 12000 tok/s; / 1000 = 12 requests/s.
    assert c4.prefill_capacity_rps == pytest.approx(12.0)
    assert c4.prefill_capacity_source is CapacitySource.busy_time


def test_tree_decode_pool_c4(tree_levels):
    c4 = tree_levels["c4"]
    # decode-0: 400 tokens / 2 s = 200 tok/s; decode-1: 500 tokens / 2.5 s = 200 tok/s.
    assert c4.decode_output_tps == pytest.approx(400.0)
    # 400 / OSL 100 = 4 requests/s.
    assert c4.decode_output_rps == pytest.approx(4.0)
    # Mean running batch between the first and last scrape: decode-0 16, decode-1
    # (20 + 12) / 2 = 16. Each: 200 tok/s x 64 / 16 = 800; (800 + 800) / 100 = 16.
    assert c4.decode_capacity_rps == pytest.approx(16.0)
    assert c4.decode_capacity_source is CapacitySource.running_batch


def test_tree_pools_c8(tree_levels):
    c8 = tree_levels["c8"]
    assert c8.valid is False
    # prefill: 20000 / 2 s = 10000 tok/s = 10 requests/s; capacity 20000 / 1.6 s
    # = 12500 tok/s = 12.5 requests/s.
    assert c8.prefill_input_rps == pytest.approx(10.0)
    assert c8.prefill_capacity_rps == pytest.approx(12.5)
    # decode: 300 + 300 = 600 tok/s = 6 requests/s; capacity 300 x 64 / 30 = 640
    # plus 300 x 64 / 40 = 480, (640 + 480) / 100 = 11.2 requests/s.
    assert c8.decode_output_rps == pytest.approx(6.0)
    assert c8.decode_capacity_rps == pytest.approx(11.2)


def test_rate_match_without_metrics():
    result = rate_match(SHAPE, client_levels(), None)
    c4 = result.levels[0]
    assert c4.prefill_input_tps is None
    assert c4.decode_capacity_rps is None
    assert c4.client_output_rps == pytest.approx(3.8)
    assert any("no server_metrics.parquet" in note for note in result.notes)


def test_rate_match_without_busy_time():
    metrics = disagg_metrics()
    metrics = metrics[metrics["metric"] != "busy_seconds_total"]
    result = rate_match(SHAPE, client_levels(), metrics)
    assert result.levels[0].prefill_capacity_rps is None
    assert any("export no sim:busy_seconds_total" in note for note in result.notes)


def test_rate_match_busy_time_by_name():
    # A file whose rows carry the busy counter only under its Prometheus name.
    metrics = disagg_metrics()
    metrics.loc[metrics["metric"] == "busy_seconds_total", "metric"] = "other"
    result = rate_match(SHAPE, client_levels(), metrics)
    assert result.levels[0].prefill_capacity_rps == pytest.approx(12.0)


def test_rate_match_without_batch_limit():
    shape = PoolShape(isl=ISL, osl=OSL, prefill_workers=1, decode_workers=2, gpus_per_worker=2)
    result = rate_match(shape, client_levels(), disagg_metrics())
    assert result.levels[0].decode_capacity_rps is None
    assert any("sets no max_running_requests" in note for note in result.notes)
    # The delivered rate needs no batch limit: 200 + 200 tok/s.
    assert result.levels[0].decode_output_tps == pytest.approx(400.0)
