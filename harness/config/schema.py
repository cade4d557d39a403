"""Structured config schema: every option with its type, unit and default.

Hydra merges the YAML files of conf/ onto these dataclasses, so a key that is not
declared here, or a value of the wrong type, is an error before anything starts.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional


class ExecutorKind(str, Enum):
    local = "local"
    slurm = "slurm"


class ModeName(str, Enum):
    aggregated = "aggregated"
    prefill = "prefill"
    decode = "decode"
    disagg = "disagg"


class EndpointKind(str, Enum):
    completions = "completions"
    chat = "chat"


class ArrivalKind(str, Enum):
    poisson = "poisson"
    gamma = "gamma"


@dataclass
class ContainerConfig:
    """A container for every process of a point on SLURM, through the pyxis srun plugin."""

    # Image for srun --container-image: a registry image or a squashfs (.sqsh) file.
    image: Optional[str] = None
    # SRC:DST[:FLAGS] entries for srun --container-mounts.
    mounts: List[str] = field(default_factory=list)


@dataclass
class ClusterConfig:
    executor: ExecutorKind = ExecutorKind.local
    # GPUs of one node; workers larger than this span whole nodes.
    gpus_per_node: int = 8
    # sbatch --partition, --account and --qos; null leaves the site's default.
    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    # Wall-clock limit of one point's job (sbatch --time), in minutes.
    time_limit_min: int = 60
    # CPUs of each node's task (sbatch --cpus-per-task, with one task per node).
    cpus_per_task: Optional[int] = None
    # Memory per node (sbatch --mem), in GB.
    mem_gb: Optional[int] = None
    container: ContainerConfig = field(default_factory=ContainerConfig)
    # Further sbatch options, option name -> value, e.g. {constraint: h100, exclusive: true}.
    sbatch_extra: Dict[str, Any] = field(default_factory=dict)
    # Further srun options of every engine process, e.g. [--mpi=pmix].
    srun_extra: List[str] = field(default_factory=list)
    # Shell commands run before each engine process starts (module loads, exports), on its
    # node and inside its container. A failing command fails the point at start-up.
    setup: List[str] = field(default_factory=list)
    # Tasks of a sweep's job array that may run at once.
    array_parallelism: int = 16


@dataclass
class ReadinessConfig:
    health_path: str = "/health"
    models_path: str = "/v1/models"
    timeout_s: float = 600.0
    poll_interval_s: float = 0.5


@dataclass
class MetricNames:
    """Prometheus metric names that the engine exports, null where it has none."""

    queue_depth: Optional[str] = None
    running_requests: Optional[str] = None
    kv_usage: Optional[str] = None
    prompt_tokens_total: Optional[str] = None
    generation_tokens_total: Optional[str] = None
    # Seconds the engine spent running steps, for a utilisation estimate (the simulator's).
    busy_seconds_total: Optional[str] = None


@dataclass
class SimProfile:
    """Step-time model of the simulated engine (see harness/sim/model.py).

    A step runs up to chunked_prefill_size prefill tokens plus one decode token for each
    running request, and lasts
    step_overhead_us + prefill_us_per_token * prefill tokens
    + decode_us_per_seq * decode sequences + context_us_per_token * context tokens.
    """

    # The same values as conf/engine/sim.yaml, so that `harness sim` started by hand
    # behaves like the simulator of a sweep.
    step_overhead_us: float = 2000.0
    prefill_us_per_token: float = 10.0
    decode_us_per_seq: float = 20.0
    context_us_per_token: float = 0.05
    kv_capacity_tokens: int = 1_000_000


class EngineBackend(str, Enum):
    """The engine whose parallelism flags and limits a worker takes."""

    sim = "sim"
    sglang = "sglang"
    vllm = "vllm"
    trtllm = "trtllm"


class FlagStyle(str, Enum):
    # dash: chunked_prefill_size -> --chunked-prefill-size; underscore keeps the name.
    dash = "dash"
    underscore = "underscore"


class ListStyle(str, Enum):
    # nargs: --flag a b; repeat: --flag a --flag b; comma: --flag a,b.
    nargs = "nargs"
    repeat = "repeat"
    comma = "comma"


@dataclass
class RoleArgs:
    """Default engine args of each worker role; engine.args overrides them."""

    aggregated: Dict[str, Any] = field(default_factory=dict)
    prefill: Dict[str, Any] = field(default_factory=dict)
    decode: Dict[str, Any] = field(default_factory=dict)


@dataclass
class RolePorts:
    """Names of the ports that a worker needs besides its HTTP port, per role."""

    aggregated: List[str] = field(default_factory=list)
    prefill: List[str] = field(default_factory=list)
    decode: List[str] = field(default_factory=list)
    # Ports on the first node of a worker that spans several nodes, e.g. the address
    # that the other nodes join.
    multinode: List[str] = field(default_factory=list)


@dataclass
class WorkerListCheck:
    """A router's list of workers: ready once it lists every worker of the point.

    GET path returns JSON whose list_key is a list with one object per worker. An object
    counts when each key of match has the given value.
    """

    path: str = "/health"
    list_key: str = "instances"
    match: Dict[str, str] = field(default_factory=dict)


@dataclass
class RouterConfig:
    """The router or frontend that receives the load in front of the workers."""

    # Jinja template under templates/ of the router's argv; null: the engine has none.
    template: Optional[str] = None
    command: List[str] = field(default_factory=list)
    args: Dict[str, Any] = field(default_factory=dict)
    flag_style: FlagStyle = FlagStyle.dash
    # The router's own environment (it does not inherit engine.env), as Jinja templates.
    env: Dict[str, str] = field(default_factory=dict)
    # File name -> template that renders its content; written next to the argv.
    files: Dict[str, str] = field(default_factory=dict)
    ports: List[str] = field(default_factory=list)
    # Start the router in every mode; false starts it only for mode=disagg.
    every_mode: bool = False
    # Paths that must return 200 before the load starts.
    readiness_paths: List[str] = field(default_factory=lambda: ["/health"])
    workers: Optional[WorkerListCheck] = None
    # The router's own Prometheus names, sampled beside the workers' as worker "router";
    # null: the router's /metrics is not sampled.
    metrics: Optional[MetricNames] = None
    metrics_path: str = "/metrics"


@dataclass
class ServiceConfig:
    """A side service that starts before the workers, such as etcd or NATS."""

    name: str = "service"
    # Program and leading arguments, e.g. [etcd]; the template adds the rest.
    command: List[str] = field(default_factory=list)
    template: str = "service.j2"
    ports: List[str] = field(default_factory=list)
    # Port name and path that return 200 once the service is up.
    health_port: str = "client"
    health_path: str = "/health"


@dataclass
class EngineConfig:
    name: str = "sim"
    backend: EngineBackend = EngineBackend.sim
    # SGLang before --attn-dp-size (0.5.21 and older) spells DP-attention
    # --dp-size N --enable-dp-attention; SGLang 0.5.23 still accepts that, deprecated.
    sglang_legacy_dp_attention: bool = False
    # Program and leading arguments of a worker, e.g. [python3, -m, sglang.launch_server].
    command: List[str] = field(default_factory=list)
    # Flag that passes model.path (e.g. --model for vLLM's api_server module); null renders
    # the path as a positional argument, as `vllm serve MODEL` takes it.
    model_flag: Optional[str] = None
    # Jinja template under templates/ that renders one worker's argv, one argument a line.
    template: str = "sim.j2"
    # Engine flag name -> value; true renders a bare flag, false or null omits it.
    args: Dict[str, Any] = field(default_factory=dict)
    role_args: RoleArgs = field(default_factory=RoleArgs)
    flag_style: FlagStyle = FlagStyle.dash
    list_style: ListStyle = ListStyle.nargs
    # Values are Jinja templates, so an address of a side service can be passed on; a
    # value that renders empty leaves the variable unset.
    env: Dict[str, str] = field(default_factory=dict)
    # File name -> template that renders its content, written next to the worker's argv.
    files: Dict[str, str] = field(default_factory=dict)
    ports: RolePorts = field(default_factory=RolePorts)
    readiness: ReadinessConfig = field(default_factory=ReadinessConfig)
    metrics: MetricNames = field(default_factory=MetricNames)
    # URL path of the worker's Prometheus endpoint.
    metrics_path: str = "/metrics"
    router: RouterConfig = field(default_factory=RouterConfig)
    services: List[ServiceConfig] = field(default_factory=list)
    sim: Optional[SimProfile] = None
    # Step-model values of the simulator's prefill and decode workers over engine.sim, as
    # role -> {key of SimProfile: value}, so one engine file can model both pools.
    role_sim: Dict[str, Dict[str, Any]] = field(default_factory=dict)


@dataclass
class ModelConfig:
    path: str = "tiny"
    served_name: str = "tiny"
    tokenizer: Optional[str] = None
    context_length: int = 4096
    vocab_size: int = 32000
    kv_bytes_per_token: int = 0


@dataclass
class ParallelismConfig:
    """Engine-neutral parallelism of one worker; GPUs per worker = tp * dp * pp.

    DEP8 is dp=8 with dp_attention and ep=8; TEP8 is tp=8 with ep=8.
    """

    tp: int = 1
    dp: int = 1
    ep: int = 1
    pp: int = 1
    dp_attention: bool = False


@dataclass
class ModeConfig:
    name: ModeName = ModeName.aggregated
    # Isolated prefill runs use a tiny OSL and isolated decode runs a short ISL; null
    # keeps the workload's value.
    isl: Optional[int] = None
    osl: Optional[int] = None
    # Workers of each pool in mode=disagg; other modes run one aggregated worker.
    prefill_workers: int = 1
    decode_workers: int = 1
    # Parallelism of each prefill and each decode worker in mode=disagg; null uses
    # `parallelism`. Set them as config groups: parallelism@mode.prefill_parallelism=dep8.
    prefill_parallelism: Optional[ParallelismConfig] = None
    decode_parallelism: Optional[ParallelismConfig] = None


@dataclass
class WorkloadConfig:
    isl: int = 1024
    osl: int = 1024
    endpoint: EndpointKind = EndpointKind.completions


@dataclass
class SLOConfig:
    ttft_ms: Optional[float] = None
    itl_ms: Optional[float] = None
    # Percentile at which ttft_ms and itl_ms must hold, one of 50, 90, 95, 99.
    percentile: int = 90


@dataclass
class ValidityConfig:
    """Thresholds above which a load level is flagged invalid (summary valid: false)."""

    max_error_rate: float = 0.05
    # Share of successful requests whose server-reported ISL or OSL differs from the target.
    max_mismatch_rate: float = 0.01
    # p99 of (actual send - scheduled send) for open-loop levels.
    max_send_lag_ms: float = 10.0
    # p99 of the client's event-loop lag; above it the client was saturated.
    max_loop_lag_ms: float = 20.0


@dataclass
class BenchConfig:
    concurrency: List[int] = field(default_factory=lambda: [1, 4, 16])
    # Requests/s for open-loop levels; null runs closed-loop concurrency levels.
    request_rate: Optional[List[float]] = None
    # Inter-arrival times of open-loop levels: poisson, or gamma with shape `burstiness`
    # (below 1 burstier than Poisson, above 1 more regular, 1 equals Poisson).
    arrival: ArrivalKind = ArrivalKind.poisson
    burstiness: float = 1.0
    # Cap on requests in flight for open-loop levels; null sends on schedule whatever is in flight.
    max_concurrency: Optional[int] = None
    requests_per_level: int = 64
    # A level needs requests_per_level >= this x its concurrency (or max_concurrency), so
    # that C requests stay in flight for most of it rather than only ramping up and down.
    min_requests_per_concurrency: int = 3
    warmup_requests: int = 4
    # Per-request limits: until the first token, and for the whole request.
    ttft_timeout_s: Optional[float] = None
    timeout_s: float = 600.0
    # Load generator processes per level; null picks a count from the load and the CPUs.
    client_processes: Optional[int] = None
    seed: int = 0
    slo: SLOConfig = field(default_factory=SLOConfig)
    validity: ValidityConfig = field(default_factory=ValidityConfig)


@dataclass
class EndpointConfig:
    """A server that is already running, for `harness bench`."""

    url: Optional[str] = None
    model: Optional[str] = None
    # Name of the environment variable that contains the API key. The key itself is never stored.
    api_key_env: Optional[str] = None


@dataclass
class SolverConfig:
    gpu_budget: int = 512
    # Show at most this many xPyD options, best first.
    max_options: int = 10


@dataclass
class HarnessConfig:
    results_dir: str = "results"
    # Folder that `harness bench` writes its levels into.
    output_dir: Optional[str] = None
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    parallelism: ParallelismConfig = field(default_factory=ParallelismConfig)
    mode: ModeConfig = field(default_factory=ModeConfig)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    # Sweep axes: a config key or group name -> the values to sweep.
    sweep: Dict[str, List[Any]] = field(default_factory=dict)
