"""Names and values of the ports that workers, routers and side services need.

A worker's HTTP port is passed on its own. The names here are the extra ports that an
engine config declares in engine.ports, engine.router.ports and engine.services[].ports,
such as SGLang's prefill bootstrap port or the address that the nodes of a multi-node
worker join. The job allocates a value for each name before rendering.
"""

from collections.abc import Callable, Mapping

from omegaconf import DictConfig

from harness.config.schema import EngineBackend
from harness.engines.parallelism import worker_layout
from harness.errors import LaunchError
from harness.launch.topology import Worker

# Called as allocate(owner, name), e.g. allocate("prefill-0", "bootstrap").
PortAllocator = Callable[[str, str], int | str]


def worker_port_names(cfg: DictConfig, worker: Worker) -> tuple[str, ...]:
    """Return the extra port names of a worker: its role's, plus multinode ones if it spans nodes."""
    names = list(cfg.engine.ports[worker.role.value])
    if worker_layout(EngineBackend(cfg.engine.backend), worker.gpus, cfg.cluster.gpus_per_node).nodes > 1:
        names.extend(cfg.engine.ports.multinode)
    return tuple(dict.fromkeys(names))


def placeholder_port(owner: str, name: str) -> str:
    """Return the text that stands for an unallocated port in a dry run: `<prefill-0:bootstrap>`."""
    return f"<{owner}:{name}>"


def resolve_ports(
    owner: str,
    names: tuple[str, ...],
    allocated: Mapping[str, int | str] | None,
    placeholders: bool,
) -> dict[str, int | str]:
    """Return a value for every port name, from allocated or, in a dry run, a placeholder.

    A real launch (placeholders false) that lacks a port raises LaunchError rather than
    rendering a command that would bind a port that the job did not reserve.
    """
    allocated = dict(allocated or {})
    resolved: dict[str, int | str] = {}
    for name in names:
        if name in allocated:
            resolved[name] = allocated[name]
        elif placeholders:
            resolved[name] = placeholder_port(owner, name)
        else:
            raise LaunchError(
                f"port '{name}' of {owner} was not allocated: pass ports={{'{name}': PORT}} "
                f"when rendering it (the engine config needs {list(names)})"
            )
    return resolved


def service_placeholders(services: list[Mapping]) -> dict[str, dict]:
    """Return the `services` template variable of a dry run: placeholder hosts and ports."""
    return {
        service["name"]: {
            "host": f"<{service['name']}-host>",
            "ports": {name: placeholder_port(service["name"], name) for name in service["ports"]},
        }
        for service in services
    }


def services_variable(owner: str, declared: list[Mapping], started: Mapping | None, placeholders: bool) -> dict:
    """Return the services variable: the started services, placeholders in a dry run, or raise LaunchError."""
    if started is not None or not declared:
        return dict(started or {})
    if placeholders:
        return service_placeholders(declared)
    names = [service["name"] for service in declared]
    raise LaunchError(
        f"{owner} needs the side services {names}: start them first and pass their hosts "
        "and ports (services=...) when rendering"
    )
