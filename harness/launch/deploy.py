"""Start a point's processes on its nodes: side services, then workers, then the router.

plan_launch turns the engine's Deployment (rendered commands) and the topology's node
placement into one LaunchSpec per process: the full argv (srun on its nodes inside an
allocation, a plain subprocess locally), its environment and what readiness means for
it. A dry run prints the same specs with placeholder nodes and ports.
"""

import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from omegaconf import DictConfig

from harness.engines.deployment import Deployment, plan_deployment, write_files
from harness.engines.ports import PortAllocator
from harness.launch.health import ReadyCheck, WorkerListTarget, wait_until_ready
from harness.launch.launcher import launch_argv
from harness.launch.nodes import NodeSet
from harness.launch.processes import ManagedProcess, free_port, start_process
from harness.launch.topology import Topology, Worker

logger = logging.getLogger(__name__)

# Services and the router run on the allocation's first node, where the job itself runs.
HEAD_NODE = 0


class Stage(str, Enum):
    services = "services"
    workers = "workers"
    router = "router"


@dataclass(frozen=True)
class LaunchSpec:
    name: str
    stage: Stage
    argv: list[str]
    env: dict[str, str]
    # None for a process that serves no HTTP (the other nodes of a multi-node worker).
    base_url: str | None
    readiness_paths: tuple[str, ...] = ()
    worker_list: WorkerListTarget | None = None
    # SIGINT for a process started through srun (see processes.ManagedProcess).
    stop_signal: int = signal.SIGTERM


@dataclass(frozen=True)
class PointLaunch:
    deployment: Deployment
    specs: tuple[LaunchSpec, ...]


class FreePortAllocator:
    """Allocate distinct free TCP ports on host, the node that runs the job.

    NOTE: a port is checked on this node only. A worker on another node binds the same
    number there, which fails if another job on that node uses it. The worker then exits
    at start-up and the point fails with its log.
    """

    def __init__(self, host: str) -> None:
        self.host = host
        self.used: set[int] = set()

    def __call__(self, owner: str, name: str) -> int:
        while True:
            port = free_port(self.host)
            if port not in self.used:
                self.used.add(port)
                logger.debug("port %s of %s: %d", name, owner, port)
                return port


def plan_launch(
    cfg: DictConfig,
    topology: Topology,
    nodes: NodeSet,
    allocate_port: PortAllocator,
    files_dir: Path | str | None = None,
) -> PointLaunch:
    """Render every process of the point and place it on its nodes and GPU slice."""
    placements = {placement.worker.name: placement for placement in topology.placements}

    def node_host(worker: Worker, rank: int) -> str:
        return nodes.address(placements[worker.name].nodes[rank])

    deployment = plan_deployment(
        cfg, topology, nodes.head_address, allocate_port, files_dir=files_dir, node_hosts=node_host
    )
    cluster = cfg.cluster
    stop_signal = signal.SIGINT if nodes.slurm else signal.SIGTERM

    def argv_on(name: str, argv: Sequence[str], node_indices: Sequence[int], first_gpu: int,
                gpu_count: int, tasks_per_node: int = 1) -> list[str]:
        node_names = [nodes.name(index) for index in node_indices] if nodes.slurm else None
        return launch_argv(cluster, name, argv, node_names, first_gpu, gpu_count, tasks_per_node)

    specs: list[LaunchSpec] = []
    for service in deployment.services:
        specs.append(LaunchSpec(
            name=service.name, stage=Stage.services,
            argv=argv_on(service.name, service.argv, [HEAD_NODE], 0, 0),
            env=service.env, base_url=service.base_url, readiness_paths=service.readiness_paths,
            stop_signal=stop_signal,
        ))

    readiness = cfg.engine.readiness
    for command in deployment.workers:
        placement = placements[command.worker.name]
        # An MPI launch (multi-node TRT-LLM) is one srun over all the worker's nodes.
        if command.tasks_per_node > 1:
            node_indices = placement.nodes[:command.nodes]
        else:
            node_indices = (placement.nodes[command.node_rank],)
        specs.append(LaunchSpec(
            name=command.name, stage=Stage.workers,
            argv=argv_on(command.name, command.argv, node_indices, placement.first_gpu,
                         placement.gpus_per_node, command.tasks_per_node),
            env=command.env,
            base_url=command.base_url if command.serves_http else None,
            readiness_paths=(readiness.health_path, readiness.models_path) if command.serves_http else (),
            stop_signal=stop_signal,
        ))

    router = deployment.router
    if router is not None:
        check = cfg.engine.router.workers
        worker_list = None
        if check is not None:
            worker_list = WorkerListTarget(
                path=check.path, list_key=check.list_key, match=dict(check.match),
                expected=len(topology.workers),
            )
        specs.append(LaunchSpec(
            name=router.name, stage=Stage.router,
            argv=argv_on(router.name, router.argv, [HEAD_NODE], 0, 0),
            env=router.env, base_url=router.base_url, readiness_paths=router.readiness_paths,
            worker_list=worker_list, stop_signal=stop_signal,
        ))
    return PointLaunch(deployment=deployment, specs=tuple(specs))


def start_launch(
    launch: PointLaunch,
    logs_dir: Path,
    timeout_s: float,
    poll_interval_s: float,
    processes: list[ManagedProcess],
) -> None:
    """Start each stage and wait until it is ready before the next one starts.

    Every started process is appended to `processes` at once, so that the caller stops
    all of them when a later step fails.
    """
    write_files(launch.deployment.files())
    for stage in Stage:
        earlier = list(processes)
        checks = []
        for spec in launch.specs:
            if spec.stage != stage:
                continue
            process = start_process(
                spec.name, spec.argv, spec.env, logs_dir / f"{spec.name}.log", stop_signal=spec.stop_signal
            )
            processes.append(process)
            checks.append(ReadyCheck(process, spec.base_url, spec.readiness_paths, spec.worker_list))
        if checks:
            wait_until_ready(checks, timeout_s, poll_interval_s, watched=earlier)
