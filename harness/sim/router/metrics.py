"""The router's counters and gauges, and their Prometheus text exposition (format 0.0.4)."""

from dataclasses import dataclass, field
from enum import Enum

from harness.sim.prometheus import escape_label_value
from harness.sim.router.pool import WorkerPool


class Stage(str, Enum):
    PREFILL = "prefill"
    TRANSFER = "transfer"
    DECODE = "decode"


@dataclass
class RouterStats:
    in_flight: dict[Stage, int] = field(default_factory=lambda: {stage: 0 for stage in Stage})
    requests_total: int = 0
    request_success_total: int = 0
    request_failure_total: int = 0
    prompt_tokens_total: int = 0
    generation_tokens_total: int = 0
    kv_transfer_ns_total: int = 0


# Each entry is (name, type, help, value getter).
_COUNTERS = (
    (
        "sim_router:requests_total",
        "counter",
        "Valid requests received.",
        lambda s: s.requests_total,
    ),
    (
        "sim_router:request_success_total",
        "counter",
        "Requests that received all of their max_tokens.",
        lambda s: s.request_success_total,
    ),
    (
        "sim_router:request_failure_total",
        "counter",
        "Requests ended by a worker error or a client disconnect.",
        lambda s: s.request_failure_total,
    ),
    (
        "sim_router:prompt_tokens_total",
        "counter",
        "Prompt tokens prefilled, as counted by the prefill workers.",
        lambda s: s.prompt_tokens_total,
    ),
    (
        "sim_router:generation_tokens_total",
        "counter",
        "Tokens forwarded to clients.",
        lambda s: s.generation_tokens_total,
    ),
    (
        "sim_router:kv_transfer_seconds_total",
        "counter",
        "Modelled KV transfer time of the requests that reached the transfer stage, in seconds.",
        lambda s: s.kv_transfer_ns_total / 1e9,
    ),
)


def render_router_metrics(
    stats: RouterStats, pools: list[WorkerPool], model_name: str
) -> str:
    """Render the router's metrics with model_name and role="router" labels."""
    base_labels = f'model_name="{escape_label_value(model_name)}",role="router"'
    lines = [
        "# HELP sim_router:requests_in_flight Requests in each stage of the router.",
        "# TYPE sim_router:requests_in_flight gauge",
    ]
    for stage in Stage:
        labels = f'{base_labels},stage="{stage.value}"'
        lines.append(f"sim_router:requests_in_flight{{{labels}}} {stats.in_flight[stage]}")

    lines.append(
        "# HELP sim_router:worker_requests_in_flight Requests that the router has in flight "
        "on each worker."
    )
    lines.append("# TYPE sim_router:worker_requests_in_flight gauge")
    for pool in pools:
        for url, value in pool.in_flight.items():
            labels = f'{base_labels},pool="{pool.role}",worker="{escape_label_value(url)}"'
            lines.append(f"sim_router:worker_requests_in_flight{{{labels}}} {value}")

    for name, metric_type, help_text, value_of in _COUNTERS:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {metric_type}")
        lines.append(f"{name}{{{base_labels}}} {value_of(stats)}")
    return "\n".join(lines) + "\n"
