"""Render the router or frontend in front of the workers, and the side services.

The router template receives the workers it fronts, grouped by role (`prefill`, `decode`,
`aggregated`), each with its name, host, port, URL and extra ports (SGLang's router
needs each prefill worker's bootstrap port). Only the process of a worker's first
node is listed, because the other nodes serve no HTTP.

Side services (etcd and NATS for Dynamo) start before everything else; workers and the
router reach them through templated env values such as
`ETCD_ENDPOINTS: "http://{{ services.etcd.host }}:{{ services.etcd.ports.client }}"`.
"""

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.config.schema import ModeName
from harness.engines.flags import render_flags
from harness.engines.ports import services_variable, resolve_ports
from harness.engines.render import WorkerCommand, bind_host, render_env
from harness.engines.templating import render_argv, render_text

ROUTER_NAME = "router"


@dataclass(frozen=True)
class ServiceCommand:
    """A router or side service to start: its argv, environment, files and readiness paths."""

    name: str
    argv: list[str]
    env: dict[str, str]
    host: str
    port: int | str
    ports: dict[str, int | str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    readiness_paths: tuple[str, ...] = ()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def router_needed(cfg: DictConfig) -> bool:
    """Return whether the point starts the engine's router: in disagg mode, or always."""
    router = cfg.engine.router
    if router.template is None:
        return False
    return router.every_mode or cfg.mode.name == ModeName.disagg


def service_contexts(services: Sequence[ServiceCommand]) -> dict[str, dict[str, Any]]:
    """Return the `services` template variable: name -> {host, port, ports}."""
    return {
        service.name: {"host": service.host, "port": service.port, "ports": dict(service.ports)}
        for service in services
    }


def render_router(
    cfg: DictConfig,
    workers: Sequence[WorkerCommand],
    host: str,
    port: int | str,
    *,
    ports: Mapping[str, int | str] | None = None,
    files_dir: str | Path | None = None,
    services: Sequence[ServiceCommand] = (),
) -> ServiceCommand:
    """Render the router in front of workers; ports contains the engine.router.ports values."""
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    engine = container["engine"]
    router = engine["router"]
    owner = f"engine {engine['name']}, {ROUTER_NAME}"

    port_values = resolve_ports(
        ROUTER_NAME, tuple(router["ports"]), ports, placeholders=isinstance(port, str)
    )
    listed: dict[str, list[dict[str, Any]]] = {"aggregated": [], "prefill": [], "decode": []}
    for command in workers:
        if command.serves_http:
            listed[command.worker.role.value].append({
                "name": command.worker.name, "host": command.host, "port": command.port,
                "url": command.base_url, "ports": dict(command.ports),
            })
    file_paths = {
        key: str(Path(files_dir or "<files>") / f"{ROUTER_NAME}.{key}") for key in router["files"]
    }
    context = {
        **container,
        **listed,
        "host": host,
        "bind_host": bind_host(host),
        "port": port,
        "ports": port_values,
        "router": router,
        "python": sys.executable,
        "flags": render_flags(router["args"], router["flag_style"], "nargs", "engine.router.args"),
        "files": file_paths,
        "services": services_variable(
            owner, engine["services"], service_contexts(services) if services else None,
            placeholders=isinstance(port, str),
        ),
    }

    argv = render_argv(router["template"], context, owner)
    files = {
        file_paths[key]: render_text(template, context, owner).strip("\n") + "\n"
        for key, template in router["files"].items()
    }
    env = render_env(router["env"], context, owner)
    return ServiceCommand(
        name=ROUTER_NAME, argv=argv, env=env, host=host, port=port, ports=port_values,
        files=files, readiness_paths=tuple(router["readiness_paths"]),
    )


def render_services(
    cfg: DictConfig,
    host: str,
    ports: Mapping[str, Mapping[str, int | str]] | None = None,
    files_dir: str | Path | None = None,
    placeholders: bool = False,
) -> list[ServiceCommand]:
    """Render every side service of the engine on host; ports maps service -> port name -> value.

    A service's `port` is its health port, so base_url + readiness path checks it.
    Each service gets a data folder `files_dir/<name>-data` for whatever it stores.
    """
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    commands = []
    for service in container["engine"]["services"]:
        name = service["name"]
        owner = f"engine {container['engine']['name']}, service {name}"
        port_values = resolve_ports(
            name, tuple(service["ports"]), (ports or {}).get(name), placeholders=placeholders
        )
        context = {
            **container,
            "service": service,
            "host": host,
            "bind_host": bind_host(host),
            "ports": port_values,
            "data_dir": str(Path(files_dir or "<files>") / f"{name}-data"),
        }
        commands.append(ServiceCommand(
            name=name,
            argv=render_argv(service["template"], context, owner),
            env={},
            host=host,
            port=port_values[service["health_port"]],
            ports=port_values,
            readiness_paths=(service["health_path"],),
        ))
    return commands
