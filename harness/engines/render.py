"""Render a worker's argv, environment and files from its engine template.

The template receives the whole resolved config plus the worker (role, index, GPUs), its
host and ports, and the node it runs on. It also receives the engine-native parallelism
args (`parallel`), the merged engine args of its role (`args`), both rendered as flags
(`flags`), and the paths of the files it writes (`files`). A worker that spans several
nodes gets one command per node rank (see parallelism.launch_ranks).
"""

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.config.derived import role_parallelism
from harness.config.schema import EngineBackend
from harness.engines.flags import render_flags
from harness.engines.parallelism import (
    NodePlacement,
    Parallelism,
    parallel_args,
    tasks_per_node,
    worker_layout,
)
from harness.engines.ports import services_variable, resolve_ports, worker_port_names
from harness.engines.templating import merge, render_argv, render_string, render_text
from harness.launch.topology import Role, Worker

__all__ = ["WorkerCommand", "bind_host", "merged_args", "render_env", "render_flags", "render_worker"]


@dataclass(frozen=True)
class WorkerCommand:
    worker: Worker
    argv: list[str]
    env: dict[str, str]
    host: str
    port: int | str
    # Path -> content of the files to write before the command starts.
    files: dict[str, str] = field(default_factory=dict)
    node_rank: int = 0
    nodes: int = 1
    # srun tasks on each node: 1, or one per GPU for an MPI launch (multi-node TRT-LLM).
    tasks_per_node: int = 1
    # False for the other nodes of a multi-node worker, which serve no HTTP.
    serves_http: bool = True
    metrics_path: str = "/metrics"
    ports: dict[str, int | str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Process name for logs: the worker's name, with the node rank when it spans nodes."""
        if self.nodes > 1:
            return f"{self.worker.name}-node{self.node_rank}"
        return self.worker.name

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return self.base_url + self.metrics_path


def bind_host(host: str) -> str:
    """Return the address a server listens on: a loopback host itself, else every interface."""
    return host if host.startswith("127.") or host == "localhost" else "0.0.0.0"


def render_env(templates: Mapping[str, Any], context: Mapping[str, Any], owner: str) -> dict[str, str]:
    """Render env values; a value that renders empty is left out, so the variable stays unset."""
    env = {}
    for key, value in templates.items():
        text = render_string(str(value), context, owner)
        if text:
            env[str(key)] = text
    return env


def merged_args(engine: Mapping[str, Any], role: Role) -> dict[str, Any]:
    """Return the role's default args with engine.args merged on top (engine.args wins).

    Nested mappings merge key by key, so engine.args.kv_cache_config.dtype=fp8 keeps the
    role's other kv_cache_config keys.
    """
    return merge(engine["role_args"][role.value], engine["args"])


def render_worker(
    cfg: DictConfig,
    worker: Worker,
    host: str,
    port: int | str,
    *,
    ports: Mapping[str, int | str] | None = None,
    node_rank: int = 0,
    head_host: str | None = None,
    files_dir: str | Path | None = None,
    services: Mapping[str, Mapping[str, Any]] | None = None,
) -> WorkerCommand:
    """Render the argv, environment and files that start one node's process of a worker.

    ports contains a value for every name of ports.worker_port_names(cfg, worker); when port
    is a placeholder string (a dry run), missing ports render as placeholders too.
    head_host is the host of the worker's first node (default: host). files_dir is the
    folder the job writes the files into (default: the placeholder `<files>`). services
    maps a side service's name to its host and ports, for templated env values.
    """
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    engine = container["engine"]
    backend = EngineBackend(engine["backend"])
    layout = worker_layout(backend, worker.gpus, cfg.cluster.gpus_per_node)
    command_name = worker.name if layout.nodes == 1 else f"{worker.name}-node{node_rank}"
    owner = f"engine {engine['name']}, {command_name}"

    port_values = resolve_ports(
        worker.name, worker_port_names(cfg, worker), ports, placeholders=isinstance(port, str)
    )
    placement = NodePlacement(rank=node_rank, head_host=head_host or host, ports=port_values)
    # A disaggregated worker uses its pool's parallelism, and so does `parallelism` in its template.
    worker_parallelism = OmegaConf.to_container(role_parallelism(cfg, worker.role.value), resolve=True)
    parallel = parallel_args(
        backend, Parallelism.from_config(worker_parallelism), layout, placement,
        legacy_dp_attention=engine["sglang_legacy_dp_attention"],
    )
    args = merged_args(engine, worker.role)
    style, list_style = engine["flag_style"], engine["list_style"]
    file_paths = {
        key: str(Path(files_dir or "<files>") / f"{command_name}.{key}") for key in engine["files"]
    }

    context = {
        **container,
        "parallelism": worker_parallelism,
        "worker": {
            "role": worker.role.value, "index": worker.index, "gpus": worker.gpus,
            "name": worker.name,
        },
        "host": host,
        "bind_host": bind_host(host),
        "port": port,
        "ports": port_values,
        "node": {
            "rank": node_rank, "count": layout.nodes, "gpus": layout.gpus_per_node,
            "head_host": placement.head_host,
        },
        "python": sys.executable,
        "parallel": parallel,
        "args": args,
        "flags": render_flags(parallel, style, list_style, "parallelism")
        + render_flags(args, style, list_style, "engine.args"),
        "files": file_paths,
        "services": services_variable(
            owner, engine["services"], services, placeholders=isinstance(port, str)
        ),
    }

    argv = render_argv(engine["template"], context, owner)
    # Blank lines that template tags leave at either end of a file are dropped.
    files = {
        file_paths[key]: render_text(template, context, owner).strip("\n") + "\n"
        for key, template in engine["files"].items()
    }
    env = render_env(engine["env"], context, owner)
    return WorkerCommand(
        worker=worker,
        argv=argv,
        env=env,
        host=host,
        port=port,
        files=files,
        node_rank=node_rank,
        nodes=layout.nodes,
        tasks_per_node=tasks_per_node(backend, layout),
        serves_http=node_rank == 0,
        metrics_path=engine["metrics_path"],
        ports=port_values,
    )
