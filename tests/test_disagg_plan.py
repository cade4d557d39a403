"""Disaggregated points without a run: config, topology, allocation, commands and the token cross-check."""

import sys

import pandas as pd
import pytest

from harness.config.compose import compose_config
from harness.engines.deployment import describe_deployment, plan_deployment
from harness.engines.ports import placeholder_port
from harness.errors import ConfigError
from harness.launch.allocation import slurm_parameters
from harness.launch.dry_run import point_commands
from harness.launch.plan import plan_sweep, point_id
from harness.launch.topology import Role, build_topology
from harness.loadgen.crosscheck import cross_check_tokens
from harness.loadgen.records import RequestRecord

DEP8_DEP48 = [
    "mode=disagg",
    "parallelism@mode.prefill_parallelism=dep8",
    "parallelism@mode.decode_parallelism=dep48",
]


def test_role_parallelism_groups_compose():
    cfg = compose_config(DEP8_DEP48).cfg

    assert cfg.mode.prefill_parallelism.dp == 8
    assert cfg.mode.decode_parallelism.dp == 48
    assert cfg.mode.decode_parallelism.dp_attention is True


def test_role_parallelism_plus_form_rejected():
    with pytest.raises(ConfigError, match="drop the leading"):
        compose_config(["mode=disagg", "+parallelism@mode.prefill_parallelism=dep8"])


def test_role_parallelism_needs_disagg():
    with pytest.raises(ConfigError, match="set mode=disagg"):
        compose_config(["parallelism@mode.decode_parallelism=dep48"])


def test_zero_prefill_workers_rejected():
    with pytest.raises(ConfigError, match="mode.prefill_workers=0"):
        compose_config(["mode=disagg", "mode.prefill_workers=0"])


def test_point_id_includes_role_parallelism():
    dep8 = compose_config(DEP8_DEP48).cfg
    tep8 = compose_config([*DEP8_DEP48, "parallelism@mode.prefill_parallelism=tep8"]).cfg
    three_prefill = compose_config([*DEP8_DEP48, "mode.prefill_workers=3"]).cfg

    assert point_id(dep8) != point_id(tep8)
    assert point_id(dep8) != point_id(three_prefill)


def test_topology_dep8_prefill_dep48_decode():
    cfg = compose_config(DEP8_DEP48).cfg

    topology = build_topology(cfg)

    assert [worker.name for worker in topology.workers] == ["prefill-0", "decode-0"]
    assert topology.role_gpus(Role.prefill) == 8
    assert topology.role_gpus(Role.decode) == 48
    # 8 + 48 = 56 GPUs; the decode worker takes 48 / 8 = 6 whole nodes, prefill a 7th.
    assert topology.num_gpus == 56
    assert topology.num_nodes == 7


def test_allocation_dep8_prefill_dep48_decode():
    cfg = compose_config([*DEP8_DEP48, "cluster=slurm", "mode.prefill_workers=3"]).cfg

    parameters = slurm_parameters(cfg.cluster, build_topology(cfg), job_name="harness-test")

    # 3 x 8 + 48 = 72 GPUs: 6 nodes of decode and one node per prefill worker.
    assert build_topology(cfg).num_gpus == 72
    assert parameters["nodes"] == 9
    assert parameters["gpus_per_node"] == 8


def test_render_uses_role_parallelism():
    cfg = compose_config([
        "engine=sglang", "model=deepseek_r1", *DEP8_DEP48, "cluster.gpus_per_node=8",
    ]).cfg

    deployment = plan_deployment(cfg, build_topology(cfg), "127.0.0.1", placeholder_port)
    prefill = next(command for command in deployment.workers if command.worker.role == Role.prefill)
    decode = next(command for command in deployment.workers if command.worker.role == Role.decode)

    # DEP8 renders as 8 TP ranks with 8 attention-DP ranks, DEP48 as 48 over 6 nodes.
    assert prefill.argv[prefill.argv.index("--attn-dp-size") + 1] == "8"
    assert decode.argv[decode.argv.index("--attn-dp-size") + 1] == "48"
    assert decode.argv[decode.argv.index("--nnodes") + 1] == "6"
    assert "--nnodes" not in prefill.argv


def test_dry_run_2p1d_commands():
    plan = plan_sweep(["mode=disagg", "mode.prefill_workers=2", "workload.isl=256", "workload.osl=16"])

    specs = point_commands(plan.points[0])

    python = sys.executable
    worker_tail = ["--model-name", "tiny", "--context-length", "16384"]
    sim_profile = [
        "--step-overhead-us", "2000.0", "--prefill-us-per-token", "10.0", "--decode-us-per-seq", "20.0",
        "--context-us-per-token", "0.05", "--kv-capacity-tokens", "1000000",
        "--max-running-requests", "256", "--chunked-prefill-size", "8192",
    ]

    def worker(name: str, role: str) -> list[str]:
        return [
            python, "-m", "harness", "sim", "--host", "127.0.0.1", "--port", f"<{name}:http>",
            *worker_tail, "--role", role, *sim_profile,
        ]

    # Locally each argv runs through the wrapper: bash -c SCRIPT NAME FIRST_GPU GPU_COUNT.
    commands = {spec.name: spec.argv[6:] for spec in specs}
    assert [spec.name for spec in specs] == ["prefill-0", "prefill-1", "decode-0", "router"]
    assert commands["prefill-0"] == worker("prefill-0", "prefill")
    assert commands["prefill-1"] == worker("prefill-1", "prefill")
    assert commands["decode-0"] == worker("decode-0", "decode")
    assert commands["router"] == [
        python, "-m", "harness", "sim", "router", "--host", "127.0.0.1", "--port", "<router:http>",
        "--model-name", "tiny",
        "--prefill", "http://127.0.0.1:<prefill-0:http>", "http://127.0.0.1:<prefill-1:http>",
        "--decode", "http://127.0.0.1:<decode-0:http>",
        "--kv-bytes-per-token", "4096",
        "--policy", "round_robin", "--kv-bandwidth-gbps", "50", "--kv-latency-us", "0",
    ]


def test_dry_run_router_starts_last():
    cfg = compose_config(["mode=disagg"]).cfg

    rows = describe_deployment(plan_deployment(cfg, build_topology(cfg), "127.0.0.1", placeholder_port))

    assert [name for name, _ in rows] == ["prefill-0", "decode-0", "router"]


def test_cross_check_skips_disagg_workers():
    # One request of 100 prompt and 10 generated tokens. The prefill worker counted the
    # prompt and 1 token, the decode worker 9 tokens and the router all 10; no worker
    # alone matches the client, so checking any of them would flag a correct level.
    record = RequestRecord(
        request_id=0, warmup=False, target_isl=100, target_osl=10,
        scheduled_perf_ns=0, send_perf_ns=0, send_wall_ns=0, headers_perf_ns=1,
        token_perf_ns=[2], token_counts=[1], end_perf_ns=3,
        usage_prompt_tokens=100, usage_completion_tokens=10,
        status_code=200, error_type=None, error_message=None,
    )
    counts = {
        ("prefill-0", "prompt_tokens_total"): 100, ("prefill-0", "generation_tokens_total"): 1,
        ("decode-0", "prompt_tokens_total"): 0, ("decode-0", "generation_tokens_total"): 9,
        ("router", "prompt_tokens_total"): 100, ("router", "generation_tokens_total"): 10,
    }
    server_metrics = pd.DataFrame([
        {"level": "c1", "worker": worker, "wall_ns": perf_ns, "perf_ns": perf_ns, "metric": metric,
         "name": metric, "value": float(value if perf_ns else 0), "series": 1}
        for (worker, metric), value in counts.items() for perf_ns in (0, 1)
    ])

    assert cross_check_tokens([record], server_metrics, "c1") == []
