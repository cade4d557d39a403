"""render_flags styles and the engine-neutral parallelism translation, without any config."""

import pytest

from harness.config.schema import EngineBackend
from harness.engines.flags import render_flags
from harness.engines.parallelism import (
    NodeLayout,
    NodePlacement,
    Parallelism,
    launch_ranks,
    node_layout,
    parallel_args,
    tasks_per_node,
)
from harness.errors import ConfigError

ARGS = {"cuda_graph_bs": [1, 2, 4], "max_batch_size": 64, "enable_x": True, "skip": False, "unset": None}


def test_flags_dash_nargs():
    assert render_flags(ARGS) == ["--cuda-graph-bs", "1", "2", "4", "--max-batch-size", "64", "--enable-x"]


def test_flags_underscore_repeat():
    assert render_flags(ARGS, style="underscore", list_style="repeat") == [
        "--cuda_graph_bs", "1", "--cuda_graph_bs", "2", "--cuda_graph_bs", "4",
        "--max_batch_size", "64", "--enable_x",
    ]


def test_flags_comma_list():
    assert render_flags({"ids": [0, 1]}, list_style="comma") == ["--ids", "0,1"]


def test_flags_mapping_as_json():
    args = {"kv_transfer_config": {"kv_connector": "NixlConnector", "extra": {"backends": ["UCX"]}}}

    assert render_flags(args) == [
        "--kv-transfer-config", '{"kv_connector":"NixlConnector","extra":{"backends":["UCX"]}}',
    ]


def test_flags_bool_in_list_lowercase():
    assert render_flags({"flags": [True, False]}) == ["--flags", "true", "false"]


def test_flags_nested_list_rejected():
    with pytest.raises(ConfigError, match=r"engine.args.grid: nested list \[1, 2\] cannot be a flag value"):
        render_flags({"grid": [[1, 2]]})


def test_layout_within_node():
    assert node_layout(4, 8) == NodeLayout(nodes=1, gpus_per_node=4)


def test_layout_whole_nodes():
    # 48 GPUs on nodes of 8: 48 / 8 = 6 nodes, all 8 GPUs of each.
    assert node_layout(48, 8) == NodeLayout(nodes=6, gpus_per_node=8)


def test_layout_gb200_trays():
    # 16 GPUs on trays of 4: 16 / 4 = 4 trays.
    assert node_layout(16, 4) == NodeLayout(nodes=4, gpus_per_node=4)


DEP16 = Parallelism(tp=1, dp=16, ep=16, pp=1, dp_attention=True)
TWO_NODES = NodeLayout(nodes=2, gpus_per_node=8)


def test_vllm_second_node_start_rank():
    placement = NodePlacement(rank=1, head_host="n0", ports={"dp_rpc": 5555})

    # Node 1 of 2 runs DP ranks 8..15: 8 local ranks, starting at 1 * 8 = 8.
    assert parallel_args(EngineBackend.vllm, DEP16, TWO_NODES, placement) == {
        "tensor_parallel_size": 1, "data_parallel_size": 16, "enable_expert_parallel": True,
        "data_parallel_size_local": 8, "data_parallel_address": "n0", "data_parallel_rpc_port": 5555,
        "data_parallel_start_rank": 8, "headless": True,
    }


def test_vllm_tp2_local_ranks():
    par = Parallelism(tp=2, dp=8, ep=16, pp=1, dp_attention=True)
    placement = NodePlacement(rank=0, head_host="n0", ports={"dp_rpc": 5555})

    # 8 GPUs per node / (tp 2 * pp 1) = 4 DP ranks per node.
    assert parallel_args(EngineBackend.vllm, par, TWO_NODES, placement)["data_parallel_size_local"] == 4


def test_sglang_pipeline_and_plain_dp():
    par = Parallelism(tp=2, dp=2, ep=1, pp=2, dp_attention=False)
    placement = NodePlacement(rank=0, head_host="n0", ports={})

    # Plain DP: two replicas of tp 2, each split into 2 pipeline stages (8 GPUs).
    assert parallel_args(EngineBackend.sglang, par, NodeLayout(1, 8), placement) == {
        "tp_size": 2, "dp_size": 2, "pp_size": 2,
    }


def test_trtllm_pipeline_keys():
    par = Parallelism(tp=4, dp=1, ep=4, pp=2, dp_attention=False)
    placement = NodePlacement(rank=0, head_host="n0", ports={})

    assert parallel_args(EngineBackend.trtllm, par, NodeLayout(1, 8), placement) == {
        "tensor_parallel_size": 4, "pipeline_parallel_size": 2, "moe_expert_parallel_size": 4,
    }


def test_launch_ranks_per_engine():
    ranks = {backend.value: launch_ranks(backend, TWO_NODES) for backend in EngineBackend}

    # TRT-LLM starts one MPI world for both nodes; the others one process per node.
    assert ranks == {"sim": [0, 1], "sglang": [0, 1], "vllm": [0, 1], "trtllm": [0]}


def test_tasks_per_node_mpi():
    assert tasks_per_node(EngineBackend.trtllm, TWO_NODES) == 8
    assert tasks_per_node(EngineBackend.trtllm, NodeLayout(1, 8)) == 1
    assert tasks_per_node(EngineBackend.sglang, TWO_NODES) == 1
