"""Routers, side services and whole deployments of the real engines, asserted exactly.

Disaggregated points are composed as mode=decode and then switched to mode.name=disagg,
because config validation does not accept disagg yet; the renderers only read the name.
"""

import pytest
from omegaconf import DictConfig

from harness.config.compose import compose_config
from harness.config.schema import ModeName
from harness.engines.deployment import describe_deployment, plan_deployment, write_files
from harness.engines.render import render_worker
from harness.engines.router import render_router, router_needed
from harness.errors import ConfigError, LaunchError
from harness.launch.topology import Role, Topology, Worker

HOST = "127.0.0.1"
MODEL = "deepseek-ai/DeepSeek-R1"


def compose(engine: str, *overrides: str, disagg: bool = True) -> DictConfig:
    cfg = compose_config([f"engine={engine}", "model=deepseek_r1", "mode=decode", *overrides]).cfg
    if disagg:
        cfg.mode.name = ModeName.disagg
    return cfg


def port_table(ports: dict[tuple[str, str], int]):
    """Return an allocator that hands out the given ports and fails on any other request."""
    def allocate(owner: str, name: str) -> int:
        return ports[(owner, name)]
    return allocate


# 2 prefill workers and 1 decode worker of 8 GPUs each (parallelism tp8).
TWO_P_ONE_D = Topology(
    workers=(
        Worker(Role.prefill, 0, 8), Worker(Role.prefill, 1, 8), Worker(Role.decode, 0, 8),
    ),
    gpus_per_node=8,
)
WORKER_PORTS = {
    ("prefill-0", "http"): 8001, ("prefill-1", "http"): 8002, ("decode-0", "http"): 8003,
    ("prefill-0", "bootstrap"): 9001, ("prefill-1", "bootstrap"): 9002,
    ("prefill-0", "nixl"): 9101, ("prefill-1", "nixl"): 9102, ("decode-0", "nixl"): 9103,
    ("router", "http"): 8000, ("router", "prometheus"): 8090,
}


def test_sglang_router_lists_bootstrap_ports():
    deployment = plan_deployment(compose("sglang", "parallelism=tp8"), TWO_P_ONE_D, HOST, port_table(WORKER_PORTS))

    assert deployment.router.argv == [
        "python3", "-m", "sglang_router.launch_router", "--pd-disaggregation",
        "--prefill", "http://127.0.0.1:8001", "9001",
        "--prefill", "http://127.0.0.1:8002", "9002",
        "--decode", "http://127.0.0.1:8003",
        "--host", HOST, "--port", "8000",
        "--prometheus-host", HOST, "--prometheus-port", "8090",
        "--policy", "round_robin",
    ]
    assert deployment.router.readiness_paths == ("/readiness", "/v1/models")
    assert deployment.entry_url == "http://127.0.0.1:8000"


def test_vllm_proxy_parallel_lists():
    deployment = plan_deployment(compose("vllm", "parallelism=tp8"), TWO_P_ONE_D, HOST, port_table(WORKER_PORTS))

    assert deployment.router.argv == [
        "python3", "vllm/tests/v1/kv_connector/nixl_integration/toy_proxy_server.py",
        "--host", HOST, "--port", "8000",
        "--prefiller-hosts", HOST, HOST, "--prefiller-ports", "8001", "8002",
        "--decoder-hosts", HOST, "--decoder-ports", "8003",
    ]
    assert deployment.router.readiness_paths == ("/healthcheck",)
    assert [command.env["VLLM_NIXL_SIDE_CHANNEL_PORT"] for command in deployment.workers] == ["9101", "9102", "9103"]


def test_trtllm_disaggregated_server_config(tmp_path):
    cfg = compose("trtllm", "parallelism=tp8")

    deployment = plan_deployment(cfg, TWO_P_ONE_D, HOST, port_table(WORKER_PORTS), files_dir=tmp_path)

    config_path = str(tmp_path / "router.disagg_config.yaml")
    assert deployment.router.argv == [
        "trtllm-serve", "disaggregated", "-c", config_path, "--request_timeout", "3600",
    ]
    assert deployment.router.files == {
        config_path: (
            "hostname: 127.0.0.1\nport: 8000\nbackend: pytorch\n"
            "context_servers:\n  num_instances: 2\n  urls:\n  - 127.0.0.1:8001\n  - 127.0.0.1:8002\n"
            "generation_servers:\n  num_instances: 1\n  urls:\n  - 127.0.0.1:8003\n"
        ),
    }
    # Two worker options files and the router's config file, in start order.
    assert sorted(deployment.files()) == sorted([
        str(tmp_path / "prefill-0.llm_api_options.yaml"),
        str(tmp_path / "prefill-1.llm_api_options.yaml"),
        str(tmp_path / "decode-0.llm_api_options.yaml"),
        config_path,
    ])


DYNAMO_PORTS = {
    ("etcd", "client"): 2379, ("etcd", "peer"): 2380,
    ("nats", "client"): 4222, ("nats", "monitor"): 8222,
    ("aggregated-0", "http"): 8081, ("router", "http"): 8000,
}


def test_dynamo_aggregated_deployment(tmp_path):
    cfg = compose("dynamo", "parallelism=dep8", disagg=False)
    topology = Topology(workers=(Worker(Role.aggregated, 0, 8),), gpus_per_node=8)

    deployment = plan_deployment(cfg, topology, HOST, port_table(DYNAMO_PORTS), files_dir=tmp_path)

    assert describe_deployment(deployment) == [
        ("etcd", [
            "etcd", "--name", "harness-etcd", "--data-dir", str(tmp_path / "etcd-data"),
            "--listen-client-urls", "http://127.0.0.1:2379",
            "--advertise-client-urls", "http://127.0.0.1:2379",
            "--listen-peer-urls", "http://127.0.0.1:2380",
            "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
            "--initial-cluster", "harness-etcd=http://127.0.0.1:2380",
        ]),
        ("nats", [
            "nats-server", "--addr", HOST, "--port", "4222", "--http_port", "8222",
            "--jetstream", "--store_dir", str(tmp_path / "nats-data"),
        ]),
        ("aggregated-0", [
            "python3", "-m", "dynamo.sglang", "--model-path", MODEL, "--served-model-name", MODEL,
            "--tokenizer-path", MODEL, "--enable-metrics",
            "--tp-size", "8", "--dp-size", "8", "--enable-dp-attention", "--ep-size", "8",
        ]),
        ("router", [
            "python3", "-m", "dynamo.frontend", "--http-host", HOST, "--http-port", "8000",
            "--router-mode", "round-robin",
        ]),
    ]
    assert [service.base_url for service in deployment.services] == ["http://127.0.0.1:2379", "http://127.0.0.1:8222"]
    assert [service.readiness_paths for service in deployment.services] == [("/health",), ("/healthz",)]
    # The frontend gets the service addresses but not the workers' DYN_SYSTEM_PORT.
    assert deployment.router.env == {"ETCD_ENDPOINTS": "http://127.0.0.1:2379", "NATS_SERVER": "nats://127.0.0.1:4222"}
    assert deployment.entry_url == "http://127.0.0.1:8000"
    assert deployment.metrics_targets() == [("aggregated-0", "http://127.0.0.1:8081/metrics")]


def test_router_needed_per_mode():
    needed = {
        (engine, disagg): router_needed(compose(engine, disagg=disagg))
        for engine in ["sim", "sglang", "vllm", "trtllm", "dynamo"] for disagg in [False, True]
    }

    assert needed == {
        ("sim", False): False, ("sim", True): True,
        ("sglang", False): False, ("sglang", True): True,
        ("vllm", False): False, ("vllm", True): True,
        ("trtllm", False): False, ("trtllm", True): True,
        # Dynamo's frontend is the HTTP entry in every mode.
        ("dynamo", False): True, ("dynamo", True): True,
    }


def test_single_worker_entry_without_router():
    cfg = compose("sglang", "parallelism=tp8", disagg=False)
    topology = Topology(workers=(Worker(Role.aggregated, 0, 8),), gpus_per_node=8)

    deployment = plan_deployment(cfg, topology, HOST, port_table({("aggregated-0", "http"): 8100}))

    assert deployment.router is None
    assert deployment.entry_url == "http://127.0.0.1:8100"


def test_multinode_worker_one_entry():
    cfg = compose("sglang", "parallelism=dep48", disagg=False)
    topology = Topology(workers=(Worker(Role.aggregated, 0, 48),), gpus_per_node=8)
    ports = {("aggregated-0", "http"): 8100, ("aggregated-0", "dist_init"): 9200}
    hosts = {rank: f"node{rank}" for rank in range(6)}

    deployment = plan_deployment(cfg, topology, "node0", port_table(ports),
                                 node_hosts=lambda worker, rank: hosts[rank])

    assert [command.host for command in deployment.workers] == ["node0", "node1", "node2", "node3", "node4", "node5"]
    # Every node joins the first node's address; only node 0 serves HTTP.
    assert {command.argv[command.argv.index("--dist-init-addr") + 1] for command in deployment.workers} == {"node0:9200"}
    assert deployment.entry_url == "http://node0:8100"
    assert deployment.metrics_targets() == [("aggregated-0-node0", "http://node0:8100/metrics")]


def test_sglang_router_rejects_aggregated_workers():
    cfg = compose("sglang", "parallelism=tp8")
    topology = Topology(workers=(Worker(Role.aggregated, 0, 8),), gpus_per_node=8)
    deployment = plan_deployment(compose("sglang", "parallelism=tp8", disagg=False), topology, HOST,
                                 port_table({("aggregated-0", "http"): 8100}))

    with pytest.raises(ConfigError, match="engine sglang, router: the SGLang PD router fronts prefill and "
                                          "decode workers only, but got aggregated workers aggregated-0"):
        render_router(cfg, deployment.workers, HOST, 8000, ports={"prometheus": 8090})


def test_missing_port_real_launch():
    cfg = compose("sglang", "parallelism=tp8")
    topology = Topology(workers=(Worker(Role.prefill, 0, 8),), gpus_per_node=8)

    with pytest.raises(LaunchError, match="port 'bootstrap' of prefill-0 was not allocated"):
        render_worker(cfg, topology.workers[0], HOST, 8001)


def test_missing_services_real_launch():
    cfg = compose("dynamo", disagg=False)

    with pytest.raises(LaunchError, match=r"needs the side services \['etcd', 'nats'\]"):
        render_worker(cfg, Worker(Role.aggregated, 0, 1), HOST, 8081)


def test_write_files_creates_folders(tmp_path):
    path = tmp_path / "engine" / "router.disagg_config.yaml"

    write_files({str(path): "port: 8000\n"})

    assert path.read_text() == "port: 8000\n"
