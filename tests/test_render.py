"""Engine command rendering: flags and the simulator's argv, asserted exactly."""

import sys

import pytest

from harness.engines.render import render_flags, render_worker
from harness.errors import ConfigError
from harness.launch.plan import plan_sweep


def test_flags_bare_omitted_and_lists():
    args = {"enable_dp_attention": True, "disable_radix_cache": False, "quantization": None,
            "chunked_prefill_size": 8192, "cuda_graph_bs": [1, 2, 4], "served_model_name": "a b"}

    assert render_flags(args) == [
        "--enable-dp-attention",
        "--chunked-prefill-size", "8192",
        "--cuda-graph-bs", "1", "2", "4",
        "--served-model-name", "a b",
    ]


def test_flags_underscore_style():
    assert render_flags({"max_batch_size": 64}, style="underscore") == ["--max_batch_size", "64"]


def test_flag_value_with_line_break_rejected():
    with pytest.raises(ConfigError, match="engine.args.name: value 'a\\\\nb' contains a line break"):
        render_flags({"name": "a\nb"})


def test_sim_argv_exact():
    point = plan_sweep(["+experiment=prefill_dep8", "engine.args.chunked_prefill_size=4096"]).points[0]

    command = render_worker(point.cfg, point.topology.workers[0], host="127.0.0.1", port=8123)

    assert command.argv == [
        sys.executable, "-m", "harness", "sim",
        "--host", "127.0.0.1", "--port", "8123",
        "--model-name", "tiny", "--context-length", "16384",
        "--step-overhead-us", "2000.0", "--prefill-us-per-token", "10.0",
        "--decode-us-per-seq", "20.0", "--context-us-per-token", "0.05",
        "--kv-capacity-tokens", "1000000",
        "--max-running-requests", "256", "--chunked-prefill-size", "4096",
    ]
    assert command.env == {}
    assert command.base_url == "http://127.0.0.1:8123"
