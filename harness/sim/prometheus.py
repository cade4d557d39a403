"""Prometheus text exposition (format 0.0.4) of the simulator's scheduler state."""

from harness.sim.roles import Role
from harness.sim.scheduler import MAX_SCHEDULE_LAG_NS
from harness.sim.stats import SchedulerStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Each entry is (name, type, help, value getter). The names mirror vLLM's "vllm:" metrics.
_METRICS = (
    (
        "sim:num_requests_waiting",
        "gauge",
        "Requests queued for admission.",
        lambda s: s.num_requests_waiting,
    ),
    (
        "sim:num_requests_running",
        "gauge",
        "Requests admitted to the batch.",
        lambda s: s.num_requests_running,
    ),
    (
        "sim:kv_cache_usage_perc",
        "gauge",
        "Fraction of the KV cache reserved by running requests, 0 to 1.",
        lambda s: s.kv_cache_usage_perc,
    ),
    (
        "sim:prompt_tokens_total",
        "counter",
        "Prompt tokens prefilled.",
        lambda s: s.prompt_tokens_total,
    ),
    (
        "sim:generation_tokens_total",
        "counter",
        "Tokens generated.",
        lambda s: s.generation_tokens_total,
    ),
    (
        "sim:request_success_total",
        "counter",
        "Requests that generated all of their max_tokens.",
        lambda s: s.request_success_total,
    ),
    ("sim:steps_total", "counter", "Engine steps run.", lambda s: s.steps_total),
    (
        "sim:busy_seconds_total",
        "counter",
        "Modelled time of the steps run, in seconds. Its rate is the engine's utilisation.",
        lambda s: s.busy_seconds_total,
    ),
    (
        "sim:num_requests_kv_held",
        "gauge",
        "Finished prefill requests whose KV stays reserved until the router releases it.",
        lambda s: s.num_requests_kv_held,
    ),
    (
        "sim:kv_hold_timeouts_total",
        "counter",
        "KV holds freed by their timeout because no release call came.",
        lambda s: s.kv_hold_timeouts_total,
    ),
    (
        "sim:schedule_resets_total",
        "counter",
        f"Times the step loop fell more than {MAX_SCHEDULE_LAG_NS // 1_000_000} ms behind its "
        "schedule and restarted it.",
        lambda s: s.schedule_resets_total,
    ),
)


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(
    stats: SchedulerStats, model_name: str, role: Role = Role.AGGREGATED
) -> str:
    """Render every metric with HELP and TYPE lines and model_name and role labels."""
    label = f'{{model_name="{escape_label_value(model_name)}",role="{role.value}"}}'
    lines: list[str] = []
    for name, metric_type, help_text, value_of in _METRICS:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {metric_type}")
        lines.append(f"{name}{label} {value_of(stats)}")
    return "\n".join(lines) + "\n"
