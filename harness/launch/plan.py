"""Expand a sweep into points: the Cartesian product of its axes, each with a stable id.

Axes come from the experiment's `sweep:` block and from command-line sweep overrides
(`a=1,2`); a command-line axis replaces an experiment axis of the same key, and a
single-value command-line override pins that axis.
"""

import hashlib
import itertools
import json
import logging
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.config.compose import ComposedConfig, compose_config
from harness.config.overrides import format_value, override_key, parse_overrides
from harness.config.schema import EngineBackend, ExecutorKind
from harness.engines.validate import validate_engine
from harness.errors import ConfigError
from harness.launch.topology import Topology, build_topology

logger = logging.getLogger(__name__)

# Config sections that change what a point measures. Cluster, results_dir, endpoint,
# solver, the SLOs and the validity thresholds only change where it runs or how it is judged.
_MEASURED_SECTIONS = ("engine", "model", "parallelism", "mode", "workload", "bench")
_UNMEASURED_KEYS = {
    "engine": ("readiness", "metrics", "metrics_path", "router.metrics", "router.metrics_path"),
    "bench": ("slo", "validity"),
}


@dataclass(frozen=True)
class Point:
    point_id: str
    # Axis -> the value that this point takes, as override text.
    swept: dict[str, str]
    overrides: tuple[str, ...]
    composed: ComposedConfig
    topology: Topology

    @property
    def cfg(self) -> DictConfig:
        return self.composed.cfg


@dataclass(frozen=True)
class SweepPlan:
    experiment: str
    overrides: tuple[str, ...]
    axes: dict[str, list[str]]
    points: tuple[Point, ...]


def point_id(cfg: DictConfig) -> str:
    """Hash the measurement-relevant keys of a resolved config into a 10-hex-digit id."""
    measured: dict[str, Any] = {}
    for section in _MEASURED_SECTIONS:
        values = OmegaConf.to_container(cfg[section], resolve=True, enum_to_str=True)
        for key in _UNMEASURED_KEYS.get(section, ()):
            *parents, leaf = key.split(".")
            node = values
            for parent in parents:
                node = node.get(parent) or {}
            node.pop(leaf, None)
        measured[section] = values
    # Null per-pool parallelism means "use parallelism", so it is left out and the ids of
    # points composed before these keys existed stay the same.
    for key in ("prefill_parallelism", "decode_parallelism"):
        if measured["mode"].get(key, "set") is None:
            del measured["mode"][key]
    text = json.dumps(measured, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


def _check_fits_executor(point: Point) -> None:
    """Reject a real engine's multi-node worker on the local executor.

    Locally every process of every node would start on this one machine and ask for the
    same GPUs. The simulator runs one process per worker whatever its size, so it may.
    """
    cfg = point.cfg
    if cfg.cluster.executor != ExecutorKind.local or cfg.engine.backend == EngineBackend.sim:
        return
    for worker in point.topology.workers:
        if worker.gpus > cfg.cluster.gpus_per_node:
            raise ConfigError(
                f"point {point.point_id}: worker {worker.name} of engine {cfg.engine.name} needs "
                f"{worker.gpus} GPUs, more than the {cfg.cluster.gpus_per_node} of one node, but "
                "cluster=local runs everything on this machine; use cluster=slurm, or a "
                "parallelism that fits one node"
            )


def plan_sweep(overrides: list[str]) -> SweepPlan:
    """Compose every point of the sweep; any invalid point fails the whole plan."""
    parsed = parse_overrides(overrides)
    base = compose_config(parsed.fixed)

    pinned = {override_key(item) for item in parsed.fixed}
    axes: dict[str, list[str]] = {}
    for key, values in base.cfg.sweep.items():
        if override_key(key) in pinned:
            logger.info("sweep axis %s is pinned by a command-line override", key)
            continue
        axes[key] = [format_value(value) for value in OmegaConf.to_container(values)]
    for key, values in parsed.axes.items():
        axes.pop(override_key(key), None)
        axes[key] = values

    points: list[Point] = []
    seen: dict[str, Point] = {}
    for combination in itertools.product(*axes.values()):
        swept = dict(zip(axes.keys(), combination))
        point_overrides = tuple(f"{key}={value}" for key, value in swept.items())
        composed = compose_config(parsed.fixed + list(point_overrides))
        validate_engine(composed.cfg)
        point = Point(
            point_id=point_id(composed.cfg),
            swept=swept,
            overrides=point_overrides,
            composed=composed,
            topology=build_topology(composed.cfg),
        )
        _check_fits_executor(point)
        if point.point_id in seen:
            logger.warning(
                "points %s and %s have the same measured config (id %s); keeping one",
                seen[point.point_id].swept, swept, point.point_id,
            )
            continue
        seen[point.point_id] = point
        points.append(point)

    return SweepPlan(
        experiment=base.experiment,
        overrides=tuple(overrides),
        axes=axes,
        points=tuple(points),
    )
