"""Checks of an engine config that must fail at plan time, before any job starts.

validate_engine checks that the engine can run the point's parallelism, that
engine.args does not set what harness renders itself, and that a disaggregated point
has a router. It then renders every command with placeholder ports, so a missing
template, an undefined variable or a template's fail(message) stops the sweep with a
ConfigError.
"""

import os
from collections.abc import Iterable

from omegaconf import DictConfig, OmegaConf

from harness.config.derived import role_parallelism
from harness.config.schema import EngineBackend, ModeName
from harness.engines.deployment import plan_deployment
from harness.engines.parallelism import OWNED_KEYS, Parallelism, check_parallelism, node_layout
from harness.engines.ports import placeholder_port
from harness.errors import ConfigError
from harness.launch.topology import Role, Topology, Worker, gpus_per_worker

# Args that every real engine's template renders from the config.
_RENDERED_KEYS = frozenset({"host", "port", "model", "model_path", "served_model_name"})


def validate_engine(cfg: DictConfig) -> None:
    """Raise ConfigError naming the engine, the invalid value and the fix."""
    engine = cfg.engine
    backend = EngineBackend(engine.backend)
    roles = _roles(cfg)

    if backend != EngineBackend.sim:
        for role in roles:
            role_par = role_parallelism(cfg, role.value)
            layout = node_layout(gpus_per_worker(role_par), cfg.cluster.gpus_per_node)
            check_parallelism(engine.name, backend, Parallelism.from_config(role_par), layout)
        _check_owned_keys(cfg, roles, OWNED_KEYS[backend] | _RENDERED_KEYS)

    if cfg.mode.name == ModeName.disagg and engine.router.template is None:
        raise ConfigError(
            f"engine {engine.name} has no router (engine.router.template is null), so it cannot "
            "run mode=disagg: pick an engine config with a router or add one"
        )
    if backend == EngineBackend.trtllm:
        _check_trtllm_served_name(cfg)
    for service in engine.services:
        if service.health_port not in service.ports:
            raise ConfigError(
                f"engine {engine.name}, service {service.name}: health_port "
                f"{service.health_port!r} is not one of its ports {list(service.ports)}"
            )

    plan_deployment(cfg, _topology(cfg, roles), "<host>", placeholder_port, files_dir="<files>")


def _roles(cfg: DictConfig) -> list[Role]:
    if cfg.mode.name == ModeName.disagg:
        return [Role.prefill, Role.decode]
    return [Role.aggregated]


def _topology(cfg: DictConfig, roles: Iterable[Role]) -> Topology:
    """Build the workers to render: one of each role, enough to reach every template branch."""
    workers = tuple(
        Worker(role=role, index=0, gpus=gpus_per_worker(role_parallelism(cfg, role.value))) for role in roles
    )
    return Topology(workers=workers, gpus_per_node=cfg.cluster.gpus_per_node)


def _check_owned_keys(cfg: DictConfig, roles: list[Role], owned: frozenset[str]) -> None:
    sections = [("engine.args", cfg.engine.args)]
    sections += [(f"engine.role_args.{role.value}", cfg.engine.role_args[role.value]) for role in roles]
    for where, args in sections:
        clashes = sorted(str(key) for key in args if str(key) in owned)
        if clashes:
            raise ConfigError(
                f"engine {cfg.engine.name}: {where} sets {', '.join(clashes)}, which harness renders "
                "itself from parallelism.* (tp, dp, ep, pp, dp_attention), model.* and the ports "
                f"it allocates; remove {'them' if len(clashes) > 1 else 'it'} and set those keys instead"
            )


def _check_trtllm_served_name(cfg: DictConfig) -> None:
    """trtllm-serve has no --served-model-name: it serves a local folder as its basename."""
    model = OmegaConf.to_container(cfg.model, resolve=True)
    path, served = str(model["path"]), str(model["served_name"])
    accepted = {path, os.path.basename(path.rstrip("/"))}
    if served not in accepted:
        raise ConfigError(
            f"engine {cfg.engine.name}: model.served_name={served!r} cannot be served, because "
            "trtllm-serve has no --served-model-name and names the model after model.path "
            f"({path!r}, or its last folder name for a local folder); set model.served_name "
            f"to one of {sorted(accepted)}"
        )
