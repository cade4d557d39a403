"""Translate the engine-neutral parallelism keys into each engine's own arguments.

harness describes a worker as tp x dp x pp GPUs with ep experts shards and optional
DP-attention (DEP8 = dp 8, ep 8, dp_attention). Each engine spells that differently:

- SGLang: --tp-size counts every GPU that attention and MoE share, so with DP-attention
  it is tp*dp with --attn-dp-size dp (SGLang 0.5.23; older releases spell it
  --dp-size dp --enable-dp-attention); without it --dp-size dp starts dp replicas of
  tp GPUs; --ep-size ep; --pp-size pp.
- vLLM: --tensor-parallel-size tp per DP rank, --data-parallel-size dp; experts are
  sharded over all tp*dp ranks, as EP with --enable-expert-parallel or as TP without.
- TensorRT-LLM (LLM API options): tensor_parallel_size is tp*dp, enable_attention_dp
  splits attention into tp*dp ranks, moe_expert_parallel_size ep.

A combination that an engine cannot express raises ConfigError naming the engine, the
combination and what to use instead.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.config.schema import EngineBackend
from harness.errors import ConfigError


@dataclass(frozen=True)
class Parallelism:
    tp: int
    dp: int
    ep: int
    pp: int
    dp_attention: bool

    @classmethod
    def from_config(cls, parallelism: Mapping[str, Any]) -> "Parallelism":
        return cls(
            tp=int(parallelism["tp"]),
            dp=int(parallelism["dp"]),
            ep=int(parallelism["ep"]),
            pp=int(parallelism["pp"]),
            dp_attention=bool(parallelism["dp_attention"]),
        )

    def describe(self) -> str:
        return (
            f"tp={self.tp} dp={self.dp} ep={self.ep} pp={self.pp} "
            f"dp_attention={str(self.dp_attention).lower()}"
        )


@dataclass(frozen=True)
class NodeLayout:
    nodes: int
    # GPUs that the worker uses on each of its nodes.
    gpus_per_node: int


@dataclass(frozen=True)
class NodePlacement:
    """Placement of one node's process of a worker: its node rank, the first node's host and ports."""

    rank: int
    head_host: str
    ports: Mapping[str, int | str]


# Keys that the translation below writes; engine.args must not set them too.
OWNED_KEYS: dict[EngineBackend, frozenset[str]] = {
    EngineBackend.sim: frozenset(),
    EngineBackend.sglang: frozenset({
        "tp", "tp_size", "tensor_parallel_size", "dp", "dp_size", "data_parallel_size",
        "attn_dp_size", "attention_data_parallel_size",
        "ep", "ep_size", "expert_parallel_size", "pp_size", "pipeline_parallel_size",
        "enable_dp_attention", "nnodes", "node_rank", "dist_init_addr", "nccl_init_addr",
    }),
    EngineBackend.vllm: frozenset({
        "tp", "tensor_parallel_size", "pp", "pipeline_parallel_size", "dp",
        "data_parallel_size", "enable_expert_parallel", "data_parallel_size_local",
        "data_parallel_start_rank", "data_parallel_address", "data_parallel_rpc_port",
        "data_parallel_rank", "headless",
    }),
    EngineBackend.trtllm: frozenset({
        "tp_size", "tensor_parallel_size", "pp_size", "pipeline_parallel_size", "ep_size",
        "moe_expert_parallel_size", "enable_attention_dp",
    }),
}


def node_layout(worker_gpus: int, gpus_per_node: int) -> NodeLayout:
    """Place a worker on nodes: within one node, or on whole nodes when it is larger."""
    if worker_gpus <= gpus_per_node:
        return NodeLayout(nodes=1, gpus_per_node=worker_gpus)
    if worker_gpus % gpus_per_node != 0:
        raise ConfigError(
            f"a worker of {worker_gpus} GPUs does not fill whole nodes of "
            f"cluster.gpus_per_node={gpus_per_node}: a worker larger than one node must use "
            "a multiple of gpus_per_node GPUs (tp * dp * pp)"
        )
    return NodeLayout(nodes=worker_gpus // gpus_per_node, gpus_per_node=gpus_per_node)


def worker_layout(backend: EngineBackend, worker_gpus: int, gpus_per_node: int) -> NodeLayout:
    """Place a worker of this engine: the simulator is one CPU process whatever GPUs it models."""
    if backend == EngineBackend.sim:
        return NodeLayout(nodes=1, gpus_per_node=worker_gpus)
    return node_layout(worker_gpus, gpus_per_node)


def check_parallelism(engine: str, backend: EngineBackend, par: Parallelism, layout: NodeLayout) -> None:
    """Raise ConfigError when the engine cannot run this parallelism on this layout."""
    where = f"engine {engine} ({backend.value}) cannot run parallelism {par.describe()}"
    if backend == EngineBackend.sglang:
        if par.dp > 1 and not par.dp_attention and par.tp % par.ep != 0:
            raise ConfigError(
                f"{where}: without dp_attention each of the {par.dp} data-parallel replicas "
                f"has tp={par.tp} GPUs, so ep must divide tp; set parallelism.dp_attention=true "
                "or choose ep among the divisors of tp"
            )
    elif backend == EngineBackend.vllm:
        if par.ep > 1 and par.ep != par.tp * par.dp:
            raise ConfigError(
                f"{where}: vLLM shards experts over all tp*dp={par.tp * par.dp} ranks "
                "(--enable-expert-parallel), so ep must be 1 or tp*dp"
            )
        replica_gpus = par.tp * par.pp
        if replica_gpus > layout.gpus_per_node:
            raise ConfigError(
                f"{where}: one replica of tp*pp={replica_gpus} GPUs would span nodes, which needs "
                "a Ray cluster that harness does not start; keep tp*pp within one node and "
                "scale out with dp"
            )
        if layout.nodes > 1 and layout.gpus_per_node % replica_gpus != 0:
            raise ConfigError(
                f"{where}: tp*pp={replica_gpus} does not divide the {layout.gpus_per_node} GPUs "
                "of a node, so the data-parallel ranks cannot be split evenly across nodes"
            )
    elif backend == EngineBackend.trtllm:
        if par.dp > 1 and not par.dp_attention:
            raise ConfigError(
                f"{where}: one trtllm-serve has no data-parallel replicas without attention DP; "
                "set parallelism.dp_attention=true, or run dp=1 workers and add workers"
            )
        if par.dp_attention and par.tp > 1:
            raise ConfigError(
                f"{where}: enable_attention_dp runs attention with one GPU per DP rank, so "
                "attention TP inside a DP rank (tp > 1 with dp_attention) cannot be expressed; "
                "use tp=1 with dp_attention, or dp_attention=false"
            )


def parallel_args(backend: EngineBackend, par: Parallelism, layout: NodeLayout,
                  placement: NodePlacement, legacy_dp_attention: bool = False) -> dict[str, Any]:
    """Return the engine-native args (flag names or LLM API keys) of one node's process.

    legacy_dp_attention picks SGLang's older DP-attention spelling.
    """
    if backend == EngineBackend.sglang:
        return _sglang_args(par, layout, placement, legacy_dp_attention)
    if backend == EngineBackend.vllm:
        return _vllm_args(par, layout, placement)
    if backend == EngineBackend.trtllm:
        return _trtllm_args(par)
    return {}


def launch_ranks(backend: EngineBackend, layout: NodeLayout) -> list[int]:
    """Return the node ranks that get a command of their own.

    TensorRT-LLM starts one MPI world for all nodes of a worker (one srun with a task
    per GPU), so only rank 0 has a command. The other engines start one process per node.
    """
    if backend == EngineBackend.trtllm:
        return [0]
    return list(range(layout.nodes))


def tasks_per_node(backend: EngineBackend, layout: NodeLayout) -> int:
    """Return the srun tasks per node: one per GPU for a multi-node TRT-LLM MPI world."""
    if backend == EngineBackend.trtllm and layout.nodes > 1:
        return layout.gpus_per_node
    return 1


def _sglang_args(par: Parallelism, layout: NodeLayout, placement: NodePlacement,
                 legacy_dp_attention: bool) -> dict[str, Any]:
    args: dict[str, Any] = {"tp_size": par.tp * par.dp if par.dp_attention else par.tp}
    if par.dp_attention and not legacy_dp_attention:
        args["attn_dp_size"] = par.dp
    elif par.dp > 1:
        args["dp_size"] = par.dp
    if par.dp_attention and legacy_dp_attention:
        args["enable_dp_attention"] = True
    if par.ep > 1:
        args["ep_size"] = par.ep
    if par.pp > 1:
        args["pp_size"] = par.pp
    if layout.nodes > 1:
        args["nnodes"] = layout.nodes
        args["node_rank"] = placement.rank
        args["dist_init_addr"] = f"{placement.head_host}:{placement.ports['dist_init']}"
    return args


def _vllm_args(par: Parallelism, layout: NodeLayout, placement: NodePlacement) -> dict[str, Any]:
    args: dict[str, Any] = {"tensor_parallel_size": par.tp}
    if par.pp > 1:
        args["pipeline_parallel_size"] = par.pp
    if par.dp > 1:
        args["data_parallel_size"] = par.dp
    if par.ep > 1:
        args["enable_expert_parallel"] = True
    if layout.nodes > 1:
        # Each node runs the DP ranks that fit on it; only the first node serves HTTP.
        local_ranks = layout.gpus_per_node // (par.tp * par.pp)
        args["data_parallel_size_local"] = local_ranks
        args["data_parallel_address"] = placement.head_host
        args["data_parallel_rpc_port"] = placement.ports["dp_rpc"]
        if placement.rank > 0:
            args["data_parallel_start_rank"] = placement.rank * local_ranks
            args["headless"] = True
    return args


def _trtllm_args(par: Parallelism) -> dict[str, Any]:
    args: dict[str, Any] = {"tensor_parallel_size": par.tp * par.dp}
    if par.pp > 1:
        args["pipeline_parallel_size"] = par.pp
    if par.ep > 1:
        args["moe_expert_parallel_size"] = par.ep
    if par.dp_attention:
        args["enable_attention_dp"] = True
    return args
