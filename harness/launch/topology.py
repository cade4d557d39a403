"""Topology of a point: its workers, their GPUs, and the nodes they pack into."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from omegaconf import DictConfig

from harness.config.derived import role_parallelism
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
class Placement:
    """Where one worker runs: allocation node indices and its GPU slice on each of them.

    The slice is positions first_gpu .. first_gpu + gpus_per_node - 1 in the list of GPUs
    that the job gets on a node (its CUDA_VISIBLE_DEVICES there), the same on every node.
    """

    worker: Worker
    nodes: tuple[int, ...]
    first_gpu: int
    gpus_per_node: int


@dataclass(frozen=True)
class Topology:
    workers: tuple[Worker, ...]
    gpus_per_node: int

    @property
    def num_gpus(self) -> int:
        """GPUs of every worker, both pools of a disaggregated point together."""
        return sum(worker.gpus for worker in self.workers)

    def role_gpus(self, role: Role) -> int:
        return sum(worker.gpus for worker in self.workers if worker.role == role)

    @property
    def placements(self) -> tuple[Placement, ...]:
        """Return each worker's placement, in the order of workers."""
        return place_workers(self.workers, self.gpus_per_node)

    @property
    def num_nodes(self) -> int:
        return pack_nodes([worker.gpus for worker in self.workers], self.gpus_per_node)

    @property
    def max_gpus_on_a_node(self) -> int:
        """Return the most GPUs that the workers use on any one node (the per-node request)."""
        used: dict[int, int] = {}
        for placement in self.placements:
            for node in placement.nodes:
                used[node] = used.get(node, 0) + placement.gpus_per_node
        return max(used.values(), default=0)

    def placement(self, worker: Worker) -> Placement:
        for placement in self.placements:
            if placement.worker == worker:
                return placement
        raise KeyError(f"worker {worker.name} is not part of this topology")


def gpus_per_worker(parallelism: DictConfig) -> int:
    """GPUs of one worker: tp * dp * pp (EP and DP-attention reuse the same GPUs)."""
    return parallelism.tp * parallelism.dp * parallelism.pp


def build_topology(cfg: DictConfig) -> Topology:
    """Build the workers of a point from its mode and parallelism.

    mode=disagg has mode.prefill_workers prefill workers, then mode.decode_workers
    decode workers, each with its role's parallelism (see role_parallelism). The
    isolated prefill and decode modes measure one ordinary (aggregated) server with a
    workload shaped to stress one phase, so every other mode has one aggregated worker.
    """
    if cfg.mode.name == ModeName.disagg:
        workers = []
        for role, count in ((Role.prefill, cfg.mode.prefill_workers), (Role.decode, cfg.mode.decode_workers)):
            gpus = gpus_per_worker(role_parallelism(cfg, role.value))
            workers.extend(Worker(role=role, index=index, gpus=gpus) for index in range(count))
        return Topology(workers=tuple(workers), gpus_per_node=cfg.cluster.gpus_per_node)

    worker = Worker(role=Role.aggregated, index=0, gpus=gpus_per_worker(cfg.parallelism))
    return Topology(workers=(worker,), gpus_per_node=cfg.cluster.gpus_per_node)


def pack_nodes(worker_gpus: list[int], gpus_per_node: int) -> int:
    """Count the nodes that workers of these GPU counts need (see place_workers)."""
    workers = [Worker(role=Role.aggregated, index=index, gpus=gpus) for index, gpus in enumerate(worker_gpus)]
    placements = place_workers(workers, gpus_per_node)
    return 1 + max((node for placement in placements for node in placement.nodes), default=-1)


def place_workers(workers: Sequence[Worker], gpus_per_node: int) -> tuple[Placement, ...]:
    """Assign each worker its nodes and GPU slice, first-fit decreasing.

    A worker of N >= gpus_per_node GPUs takes ceil(N / gpus_per_node) whole nodes of its
    own. Smaller workers share nodes: each goes to the first node with enough free GPUs,
    larger workers first (ties keep the workers' order). Node indices count up in the
    order that nodes are opened, so the largest worker starts on node 0.
    """
    by_worker: dict[Worker, Placement] = {}
    next_node = 0
    # Shared nodes as [node index, GPUs already used].
    shared: list[list[int]] = []
    for worker in sorted(workers, key=lambda item: item.gpus, reverse=True):
        if worker.gpus >= gpus_per_node:
            count = math.ceil(worker.gpus / gpus_per_node)
            nodes = tuple(range(next_node, next_node + count))
            next_node += count
            by_worker[worker] = Placement(worker, nodes, first_gpu=0, gpus_per_node=gpus_per_node)
            continue
        for node in shared:
            if gpus_per_node - node[1] >= worker.gpus:
                break
        else:
            node = [next_node, 0]
            next_node += 1
            shared.append(node)
        by_worker[worker] = Placement(worker, (node[0],), first_gpu=node[1], gpus_per_node=worker.gpus)
        node[1] += worker.gpus
    return tuple(by_worker[worker] for worker in workers)
