"""plan_deployment with real ports: start what it renders for the simulator on 127.0.0.1.

This is the path the job takes: allocate ports, write files, start each command, wait
for its readiness paths, send to entry_url and scrape metrics_targets.
"""

import json
import urllib.request

from harness.engines.deployment import plan_deployment, write_files
from harness.launch.health import wait_ready
from harness.launch.plan import plan_sweep
from harness.launch.processes import free_port, start_process, stop_processes

HOST = "127.0.0.1"


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def test_sim_deployment_serves(tmp_path):
    point = plan_sweep(["+experiment=prefill_dep8", "engine.args.chunked_prefill_size=4096"]).points[0]
    allocated: dict[tuple[str, str], int] = {}

    def allocate(owner: str, name: str) -> int:
        allocated[(owner, name)] = free_port(HOST)
        return allocated[(owner, name)]

    deployment = plan_deployment(point.cfg, point.topology, HOST, allocate, files_dir=tmp_path / "engine")
    write_files(deployment.files())
    command = deployment.workers[0]
    process = start_process(command.name, command.argv, command.env, tmp_path / "logs" / "sim.log")
    try:
        readiness = point.cfg.engine.readiness
        wait_ready([(process, command.base_url)], [readiness.health_path, readiness.models_path],
                   timeout_s=60, poll_interval_s=0.2)
        models = json.loads(get_text(deployment.entry_url + "/v1/models"))
        metrics = get_text(deployment.metrics_targets()[0][1])
    finally:
        stop_processes([process])

    # The sim has one HTTP port and nothing else to allocate.
    assert list(allocated) == [("aggregated-0", "http")]
    assert deployment.entry_url == f"http://{HOST}:{allocated[('aggregated-0', 'http')]}"
    assert [model["id"] for model in models["data"]] == ["tiny"]
    assert point.cfg.engine.metrics.queue_depth in metrics


def test_dynamo_ports_in_start_order(tmp_path):
    point = plan_sweep(["engine=dynamo", "parallelism=tp1"]).points[0]
    requested: list[tuple[str, str]] = []

    def allocate(owner: str, name: str) -> int:
        requested.append((owner, name))
        return 20000 + len(requested)

    plan_deployment(point.cfg, point.topology, HOST, allocate, files_dir=tmp_path)

    assert requested == [
        ("etcd", "client"), ("etcd", "peer"), ("nats", "client"), ("nats", "monitor"),
        ("aggregated-0", "http"), ("router", "http"),
    ]


def test_sim_dep48_one_process():
    point = plan_sweep(["+experiment=decode_dep48", "engine.args.max_running_requests=32"]).points[0]

    deployment = plan_deployment(point.cfg, point.topology, HOST, lambda owner, name: 8100)

    # The simulator models 48 GPUs in one CPU process, so one command, no node suffix.
    assert [command.name for command in deployment.workers] == ["aggregated-0"]
