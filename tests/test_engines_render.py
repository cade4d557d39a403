"""Golden argv, environment and files of every real engine's worker, per role and parallelism.

Each case composes the real conf/ files with model=deepseek_r1 (path, served name and
tokenizer all `deepseek-ai/DeepSeek-R1`) and renders one worker on 127.0.0.1 with its
HTTP port 8100. The expected lists are written out flag by flag.
"""

import pytest

from harness.config.compose import compose_config
from harness.engines.render import render_worker
from harness.launch.topology import Role, Worker, gpus_per_worker

MODEL = "deepseek-ai/DeepSeek-R1"
HOST = "127.0.0.1"
HTTP_PORT = 8100
# Extra ports by name; each engine takes the ones it declares.
PORTS = {"bootstrap": 9100, "dist_init": 9200, "dp_rpc": 9300, "nixl": 9400}
SERVICES = {
    "etcd": {"host": HOST, "ports": {"client": 2379, "peer": 2380}},
    "nats": {"host": HOST, "ports": {"client": 4222, "monitor": 8222}},
}

PARALLELISMS = ["tp1", "tp8", "tep8", "dep8", "dep48"]
ROLES = [Role.aggregated, Role.prefill, Role.decode]


def render(engine: str, parallelism: str, role: Role, *overrides: str, node_rank: int = 0, files_dir=None):
    cfg = compose_config([f"engine={engine}", f"parallelism={parallelism}", "model=deepseek_r1", *overrides]).cfg
    worker = Worker(role=role, index=0, gpus=gpus_per_worker(cfg.parallelism))
    ports = {name: PORTS[name] for name in PORTS}
    return render_worker(
        cfg, worker, HOST, HTTP_PORT, ports=ports, node_rank=node_rank, files_dir=files_dir,
        services=SERVICES,
    )


# --- SGLang ---

SGLANG_BASE = [
    "python3", "-m", "sglang.launch_server",
    "--model-path", MODEL, "--served-model-name", MODEL, "--tokenizer-path", MODEL,
    "--host", HOST, "--port", "8100", "--enable-metrics",
]
SGLANG_ROLE = {
    Role.aggregated: [],
    Role.prefill: ["--disaggregation-mode", "prefill", "--disaggregation-bootstrap-port", "9100"],
    Role.decode: ["--disaggregation-mode", "decode"],
}
SGLANG_ROLE_ARGS = {
    Role.aggregated: [],
    Role.prefill: ["--disaggregation-transfer-backend", "nixl"],
    Role.decode: ["--disaggregation-transfer-backend", "nixl"],
}
# DEP: --tp-size counts all tp*dp GPUs and --attn-dp-size splits attention (SGLang 0.5.23).
SGLANG_PARALLEL = {
    "tp1": ["--tp-size", "1"],
    "tp8": ["--tp-size", "8"],
    "tep8": ["--tp-size", "8", "--ep-size", "8"],
    "dep8": ["--tp-size", "8", "--attn-dp-size", "8", "--ep-size", "8"],
    # 48 GPUs = 6 nodes of 8; node 0 hosts the address the others join.
    "dep48": ["--tp-size", "48", "--attn-dp-size", "48", "--ep-size", "48",
              "--nnodes", "6", "--node-rank", "0", "--dist-init-addr", "127.0.0.1:9200"],
}


@pytest.mark.parametrize("parallelism", PARALLELISMS)
@pytest.mark.parametrize("role", ROLES, ids=lambda role: role.value)
def test_sglang_worker_argv(parallelism, role):
    command = render("sglang", parallelism, role)

    assert command.argv == SGLANG_BASE + SGLANG_ROLE[role] + SGLANG_PARALLEL[parallelism] + SGLANG_ROLE_ARGS[role]
    assert command.env == {}
    assert command.files == {}


def test_sglang_dep48_other_node():
    command = render("sglang", "dep48", Role.decode, node_rank=3)

    assert command.argv[-8:] == [
        "--nnodes", "6", "--node-rank", "3", "--dist-init-addr", "127.0.0.1:9200",
        "--disaggregation-transfer-backend", "nixl",
    ]
    assert command.name == "decode-0-node3"
    assert command.serves_http is False
    assert command.nodes == 6
    assert command.tasks_per_node == 1


def test_sglang_args_after_parallel_flags():
    command = render("sglang", "dep8", Role.aggregated, "engine.args.chunked_prefill_size=8192",
                     "engine.args.mem_fraction_static=0.85", "+engine.args.cuda_graph_bs_decode=[1,8,64]")

    assert command.argv == SGLANG_BASE + SGLANG_PARALLEL["dep8"] + [
        "--chunked-prefill-size", "8192", "--mem-fraction-static", "0.85",
        "--cuda-graph-bs-decode", "1", "8", "64",
    ]


def test_sglang_legacy_dp_attention():
    command = render("sglang", "dep8", Role.aggregated, "engine.sglang_legacy_dp_attention=true")

    assert command.argv == SGLANG_BASE + ["--tp-size", "8", "--dp-size", "8", "--enable-dp-attention", "--ep-size", "8"]


# --- vLLM ---

VLLM_BASE = [
    "vllm", "serve", MODEL, "--served-model-name", MODEL, "--tokenizer", MODEL,
    "--host", HOST, "--port", "8100",
]
VLLM_KV = ["--kv-transfer-config", '{"kv_connector":"NixlConnector","kv_role":"kv_both"}']
VLLM_ROLE_ARGS = {Role.aggregated: [], Role.prefill: VLLM_KV, Role.decode: VLLM_KV}
VLLM_ENV = {
    Role.aggregated: {},
    Role.prefill: {"VLLM_NIXL_SIDE_CHANNEL_PORT": "9400", "VLLM_NIXL_SIDE_CHANNEL_HOST": HOST},
    Role.decode: {"VLLM_NIXL_SIDE_CHANNEL_PORT": "9400", "VLLM_NIXL_SIDE_CHANNEL_HOST": HOST},
}
# vLLM's TP size is per DP rank, and EP spans all tp*dp ranks.
VLLM_PARALLEL = {
    "tp1": ["--tensor-parallel-size", "1"],
    "tp8": ["--tensor-parallel-size", "8"],
    "tep8": ["--tensor-parallel-size", "8", "--enable-expert-parallel"],
    "dep8": ["--tensor-parallel-size", "1", "--data-parallel-size", "8", "--enable-expert-parallel"],
    # 48 DP ranks of 1 GPU over 6 nodes: 8 local ranks on each.
    "dep48": ["--tensor-parallel-size", "1", "--data-parallel-size", "48", "--enable-expert-parallel",
              "--data-parallel-size-local", "8", "--data-parallel-address", HOST,
              "--data-parallel-rpc-port", "9300"],
}


@pytest.mark.parametrize("parallelism", PARALLELISMS)
@pytest.mark.parametrize("role", ROLES, ids=lambda role: role.value)
def test_vllm_worker_argv(parallelism, role):
    command = render("vllm", parallelism, role)

    assert command.argv == VLLM_BASE + VLLM_PARALLEL[parallelism] + VLLM_ROLE_ARGS[role]
    assert command.env == VLLM_ENV[role]
    assert command.files == {}


def test_vllm_dep48_headless_node():
    command = render("vllm", "dep48", Role.aggregated, node_rank=5)

    # Node 5 runs DP ranks 40..47: start rank 5 * 8 = 40, without an API server.
    assert command.argv == VLLM_BASE + VLLM_PARALLEL["dep48"] + ["--data-parallel-start-rank", "40", "--headless"]
    assert command.serves_http is False


def test_vllm_args_sweepable():
    command = render("vllm", "tp8", Role.aggregated, "engine.args.max_num_seqs=256",
                     "engine.args.max_num_batched_tokens=16384")

    assert command.argv == VLLM_BASE + VLLM_PARALLEL["tp8"] + [
        "--max-num-seqs", "256", "--max-num-batched-tokens", "16384",
    ]


# --- TensorRT-LLM ---

def trtllm_argv(options_path: str, multinode: bool = False) -> list[str]:
    launcher = ["trtllm-llmapi-launch"] if multinode else []
    return launcher + [
        "trtllm-serve", MODEL, "--tokenizer", MODEL, "--host", HOST, "--port", "8100",
        "--extra_llm_api_options", options_path,
    ]


# tensor_parallel_size covers tp*dp; attention DP splits attention into those ranks.
TRTLLM_PARALLEL = {
    "tp1": "tensor_parallel_size: 1\n",
    "tp8": "tensor_parallel_size: 8\n",
    "tep8": "tensor_parallel_size: 8\nmoe_expert_parallel_size: 8\n",
    "dep8": "tensor_parallel_size: 8\nmoe_expert_parallel_size: 8\nenable_attention_dp: true\n",
    "dep48": "tensor_parallel_size: 48\nmoe_expert_parallel_size: 48\nenable_attention_dp: true\n",
}
# workload 1k1k: the KV transfer buffer takes ISL = 1024 tokens.
TRTLLM_ROLE = {
    Role.aggregated: "",
    Role.prefill: (
        "disable_overlap_scheduler: true\n"
        "cache_transceiver_config:\n  backend: NIXL\n  max_tokens_in_buffer: 1024\n"
    ),
    Role.decode: "cache_transceiver_config:\n  backend: NIXL\n  max_tokens_in_buffer: 1024\n",
}


@pytest.mark.parametrize("parallelism", PARALLELISMS)
@pytest.mark.parametrize("role", ROLES, ids=lambda role: role.value)
def test_trtllm_worker_argv_and_options(parallelism, role, tmp_path):
    command = render("trtllm", parallelism, role, files_dir=tmp_path)

    multinode = parallelism == "dep48"
    name = f"{role.value}-0-node0" if multinode else f"{role.value}-0"
    options_path = str(tmp_path / f"{name}.llm_api_options.yaml")
    assert command.argv == trtllm_argv(options_path, multinode)
    assert command.env == {}
    assert command.files == {
        options_path: "return_perf_metrics: true\nenable_iter_perf_stats: true\n"
        + TRTLLM_PARALLEL[parallelism] + TRTLLM_ROLE[role],
    }


def test_trtllm_dep48_one_mpi_launch():
    command = render("trtllm", "dep48", Role.aggregated)

    # One srun over 6 nodes with a task per GPU: 8 tasks on each node.
    assert command.nodes == 6
    assert command.tasks_per_node == 8


def test_trtllm_nested_args_merge(tmp_path):
    command = render("trtllm", "tp8", Role.prefill, "engine.args.max_batch_size=64",
                     "engine.args.kv_cache_config.free_gpu_memory_fraction=0.8",
                     "+engine.args.cache_transceiver_config.backend=UCX", files_dir=tmp_path)

    # engine.args replaces only the backend key of the prefill role's transceiver config.
    assert list(command.files.values()) == [
        "return_perf_metrics: true\nenable_iter_perf_stats: true\ntensor_parallel_size: 8\n"
        "disable_overlap_scheduler: true\n"
        "cache_transceiver_config:\n  backend: UCX\n  max_tokens_in_buffer: 1024\n"
        "max_batch_size: 64\nkv_cache_config:\n  free_gpu_memory_fraction: 0.8\n",
    ]


# --- Dynamo (SGLang backend) ---

DYNAMO_BASE = [
    "python3", "-m", "dynamo.sglang",
    "--model-path", MODEL, "--served-model-name", MODEL, "--tokenizer-path", MODEL,
    "--enable-metrics",
]
# Dynamo 1.6.1 pins SGLang 0.5.21, which spells DP-attention --dp-size --enable-dp-attention.
DYNAMO_PARALLEL = {
    "tp1": ["--tp-size", "1"],
    "tp8": ["--tp-size", "8"],
    "tep8": ["--tp-size", "8", "--ep-size", "8"],
    "dep8": ["--tp-size", "8", "--dp-size", "8", "--enable-dp-attention", "--ep-size", "8"],
    "dep48": ["--tp-size", "48", "--dp-size", "48", "--enable-dp-attention", "--ep-size", "48",
              "--nnodes", "6", "--node-rank", "0", "--dist-init-addr", "127.0.0.1:9200"],
}
DYNAMO_ENV = {
    "DYN_SYSTEM_PORT": "8100",
    "ETCD_ENDPOINTS": "http://127.0.0.1:2379",
    "NATS_SERVER": "nats://127.0.0.1:4222",
}


@pytest.mark.parametrize("parallelism", PARALLELISMS)
@pytest.mark.parametrize("role", ROLES, ids=lambda role: role.value)
def test_dynamo_worker_argv(parallelism, role):
    command = render("dynamo", parallelism, role)

    assert command.argv == DYNAMO_BASE + SGLANG_ROLE[role] + DYNAMO_PARALLEL[parallelism] + SGLANG_ROLE_ARGS[role]
    assert command.env == DYNAMO_ENV
    assert command.metrics_url == "http://127.0.0.1:8100/metrics"


def test_metrics_path_per_engine():
    paths = {engine: render(engine, "tp1", Role.aggregated).metrics_url
             for engine in ["sglang", "vllm", "trtllm", "dynamo"]}

    assert paths == {
        "sglang": "http://127.0.0.1:8100/metrics",
        "vllm": "http://127.0.0.1:8100/metrics",
        "trtllm": "http://127.0.0.1:8100/prometheus/metrics",
        "dynamo": "http://127.0.0.1:8100/metrics",
    }


def test_local_folder_model_path():
    command = render("sglang", "tp1", Role.aggregated, "model.path=/models/r1", "model.served_name=r1",
                     "model.tokenizer=null")

    assert command.argv[3:9] == ["--model-path", "/models/r1", "--served-model-name", "r1", "--host", HOST]
