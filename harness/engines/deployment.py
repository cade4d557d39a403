"""Everything one point starts, in start order: side services, workers, then the router.

plan_deployment allocates every port through a callback and renders every command, so
the job starts what it returns and a dry run prints the same commands with
placeholder ports. The load goes to entry_url: the router when the point has one,
else its only worker.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from harness.config.schema import EngineBackend
from harness.engines.parallelism import launch_ranks, worker_layout
from harness.engines.ports import PortAllocator, worker_port_names
from harness.engines.render import WorkerCommand, render_worker
from harness.engines.router import (
    ROUTER_NAME,
    ServiceCommand,
    render_router,
    render_services,
    router_needed,
    service_contexts,
)
from harness.errors import LaunchError
from harness.launch.topology import Topology, Worker
from harness.results.io import write_text_atomic

# Returns the host of a worker's node rank; the default puts everything on one host.
NodeHosts = Callable[[Worker, int], str]


@dataclass(frozen=True)
class Deployment:
    services: tuple[ServiceCommand, ...]
    workers: tuple[WorkerCommand, ...]
    router: ServiceCommand | None

    @property
    def entry_url(self) -> str:
        """Return the URL that the load generator sends to."""
        if self.router is not None:
            return self.router.base_url
        serving = [command for command in self.workers if command.serves_http]
        if len(serving) != 1:
            raise LaunchError(
                f"no router and {len(serving)} workers serve HTTP: a point without a router "
                "must have exactly one worker; set engine.router for this mode"
            )
        return serving[0].base_url

    def metrics_targets(self) -> list[tuple[str, str]]:
        """Return (name, Prometheus URL) of every worker process that serves HTTP."""
        return [(command.name, command.metrics_url) for command in self.workers if command.serves_http]

    def files(self) -> dict[str, str]:
        """Return path -> content of every file that the commands read."""
        files: dict[str, str] = {}
        for command in [*self.services, *self.workers, *([self.router] if self.router else [])]:
            files.update(command.files)
        return files


def plan_deployment(
    cfg: DictConfig,
    topology: Topology,
    host: str,
    allocate_port: PortAllocator,
    files_dir: str | Path | None = None,
    node_hosts: NodeHosts | None = None,
) -> Deployment:
    """Allocate ports and render every command of a point.

    allocate_port(owner, name) returns the port `name` of `owner` (a worker name, the
    router, or a service); the worker's HTTP port is called "http". Services and the
    router run on host; workers run on node_hosts(worker, rank), default host.
    """
    services = render_services(
        cfg, host,
        ports={
            service.name: {name: allocate_port(service.name, name) for name in service.ports}
            for service in cfg.engine.services
        },
        files_dir=files_dir,
    )
    service_vars = service_contexts(services)

    backend = EngineBackend(cfg.engine.backend)
    workers: list[WorkerCommand] = []
    for worker in topology.workers:
        layout = worker_layout(backend, worker.gpus, cfg.cluster.gpus_per_node)
        http_port = allocate_port(worker.name, "http")
        extra_ports = {name: allocate_port(worker.name, name) for name in worker_port_names(cfg, worker)}
        head_host = node_hosts(worker, 0) if node_hosts else host
        for rank in launch_ranks(backend, layout):
            workers.append(render_worker(
                cfg, worker, node_hosts(worker, rank) if node_hosts else host, http_port,
                ports=extra_ports, node_rank=rank, head_host=head_host, files_dir=files_dir,
                services=service_vars,
            ))

    router = None
    if router_needed(cfg):
        router = render_router(
            cfg, workers, host, allocate_port(ROUTER_NAME, "http"),
            ports={name: allocate_port(ROUTER_NAME, name) for name in cfg.engine.router.ports},
            files_dir=files_dir, services=services,
        )
    return Deployment(services=tuple(services), workers=tuple(workers), router=router)


def write_files(files: dict[str, str]) -> None:
    """Write each file atomically, creating its folder."""
    for path, content in files.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, content)


def describe_deployment(deployment: Deployment) -> list[tuple[str, Sequence[str]]]:
    """Return (name, argv) of every command in start order, for a dry run or a log."""
    rows: list[tuple[str, Sequence[str]]] = [(service.name, service.argv) for service in deployment.services]
    rows.extend((command.name, command.argv) for command in deployment.workers)
    if deployment.router is not None:
        rows.append((deployment.router.name, deployment.router.argv))
    return rows
