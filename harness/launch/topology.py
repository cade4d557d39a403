"""Topology of a point: its workers, their GPUs, and the nodes they pack into."""

import math
from dataclasses import dataclass
from enum import Enum

from omegaconf import DictConfig

from harness.config.schema import ModeName


class Role(str, Enum):
    aggregated = "aggregated"
    prefill = "prefill"
    decode = "decode"


@dataclass(frozen=True)
class Worker:
    role: Role
    index: int
    gpus: int

    @property
    def name(self) -> str:
        return f"{self.role.value}-{self.index}"


@dataclass(frozen=True)
class Topology:
    workers: tuple[Worker, ...]
    gpus_per_node: int

    @property
    def num_gpus(self) -> int:
        return sum(worker.gpus for worker in self.workers)

    @property
    def num_nodes(self) -> int:
        return pack_nodes([worker.gpus for worker in self.workers], self.gpus_per_node)


def gpus_per_worker(parallelism: DictConfig) -> int:
    """GPUs of one worker: tp * dp * pp (EP and DP-attention reuse the same GPUs)."""
    return parallelism.tp * parallelism.dp * parallelism.pp


def build_topology(cfg: DictConfig) -> Topology:
    """Build the workers of a point from its mode and parallelism.

    The isolated prefill and decode modes measure one ordinary (aggregated) server with
    a workload shaped to stress one phase, so every non-disaggregated mode has one worker.
    """
    if cfg.mode.name == ModeName.disagg:
        raise NotImplementedError("disaggregated topologies are not built yet")
    worker = Worker(role=Role.aggregated, index=0, gpus=gpus_per_worker(cfg.parallelism))
    return Topology(workers=(worker,), gpus_per_node=cfg.cluster.gpus_per_node)


def pack_nodes(worker_gpus: list[int], gpus_per_node: int) -> int:
    """Count the nodes that the workers need.

    A worker of N >= gpus_per_node GPUs takes ceil(N / gpus_per_node) whole nodes; smaller
    workers are packed first-fit decreasing into shared nodes.
    """
    nodes = 0
    free_gpus: list[int] = []
    for gpus in sorted(worker_gpus, reverse=True):
        if gpus >= gpus_per_node:
            nodes += math.ceil(gpus / gpus_per_node)
            continue
        for index, free in enumerate(free_gpus):
            if free >= gpus:
                free_gpus[index] -= gpus
                break
        else:
            free_gpus.append(gpus_per_node - gpus)
    return nodes + len(free_gpus)
