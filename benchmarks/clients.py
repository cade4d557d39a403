"""The load generators under test: how to start one level of each and how to read what it recorded.

Each tool runs as its own process (pinned by the caller), sends `isl` prompt tokens
and requests exactly `osl` output tokens with ignore_eos, streams to /v1/completions
and stops after a fixed number of requests at a fixed concurrency.
"""

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from benchmarks.ground_truth import ObservedRequest
from harness.loadgen.records import read_records_parquet

REPO_DIR = Path(__file__).resolve().parent.parent

MODEL_NAME = "tiny"


@dataclass(frozen=True)
class LevelPlan:
    concurrency: int
    requests: int
    isl: int
    osl: int
    processes: int = 1


@dataclass(frozen=True)
class ToolOutcome:
    completed: int
    failed: int
    observed: list[ObservedRequest]


class LoadGenerator(Protocol):
    name: str
    # Variables added to the environment of the tool's process.
    extra_env: dict[str, str]

    def command(self, plan: LevelPlan, base_url: str, work_dir: Path) -> list[str]:
        """Return the argv that runs one level and writes its output under work_dir."""
        ...

    def read_outcome(self, work_dir: Path) -> ToolOutcome:
        """Read the requests that the tool recorded under work_dir."""
        ...


class HarnessTool:
    """The harness load generator, through benchmarks/harness_client.py."""

    name = "harness"
    extra_env = {"PYTHONPATH": str(REPO_DIR)}

    def command(self, plan: LevelPlan, base_url: str, work_dir: Path) -> list[str]:
        return [
            sys.executable, "-m", "benchmarks.harness_client",
            "--url", base_url,
            "--model", MODEL_NAME,
            "--concurrency", str(plan.concurrency),
            "--requests", str(plan.requests),
            "--isl", str(plan.isl),
            "--osl", str(plan.osl),
            "--processes", str(plan.processes),
            "--output-dir", str(work_dir),
        ]

    def read_outcome(self, work_dir: Path) -> ToolOutcome:
        records = read_records_parquet(work_dir / "requests.parquet")
        observed = []
        for record in records:
            if not record.succeeded:
                continue
            arrivals: list[int] = []
            for stamp_ns, count in zip(record.token_perf_ns, record.token_counts):
                arrivals.extend([stamp_ns] * count)
            observed.append(
                ObservedRequest(
                    # NOTE: harness does not send X-Request-Id, so its records carry no
                    # server id and ground_truth.match_requests falls back to send order.
                    response_id=None,
                    send_ns=record.send_perf_ns,
                    first_token_ns=record.token_perf_ns[0],
                    token_arrival_ns=tuple(arrivals),
                    clock="perf",
                )
            )
        failed = sum(1 for record in records if not record.succeeded)
        return ToolOutcome(completed=len(observed), failed=failed, observed=observed)


class AIPerfTool:
    """NVIDIA AIPerf, installed by scripts/install_bench_tools.sh."""

    name = "aiperf"
    # No HF_HUB_OFFLINE here: with it, AIPerf 0.13.0 treats the local tokenizer folder as
    # a hub repository name and fails. A local folder is never downloaded anyway.
    extra_env: dict[str, str] = {}

    def __init__(self, executable: Path, tokenizer_dir: Path) -> None:
        self.executable = executable
        self.tokenizer_dir = tokenizer_dir

    def command(self, plan: LevelPlan, base_url: str, work_dir: Path) -> list[str]:
        return [
            str(self.executable), "profile",
            "--model-names", MODEL_NAME,
            "--url", base_url,
            "--endpoint-type", "completions",
            "--streaming",
            "--tokenizer", str(self.tokenizer_dir),
            "--concurrency", str(plan.concurrency),
            "--request-count", str(plan.requests),
            "--isl", str(plan.isl),
            "--osl", str(plan.osl),
            "--extra-inputs", "ignore_eos:true",
            "--extra-inputs", f"min_tokens:{plan.osl}",
            "--random-seed", "0",
            "--ui-type", "none",
            # AIPerf 0.13.0 polls DCGM exporters on localhost:9400 and 9401 by default,
            # which this benchmark does not start, and would add its own scrapes of the
            # simulator's /metrics to those of the benchmark.
            "--no-gpu-telemetry",
            "--no-server-metrics",
            "--output-artifact-dir", str(work_dir),
        ]

    def read_outcome(self, work_dir: Path) -> ToolOutcome:
        observed = []
        failed = 0
        with open(work_dir / "profile_export.jsonl", encoding="utf-8") as export_file:
            for line in export_file:
                if not line.strip():
                    continue
                row = json.loads(line)
                metrics = row.get("metrics") or {}
                if row.get("error") or "time_to_first_token" not in metrics:
                    failed += 1
                    continue
                metadata = row["metadata"]
                send_ns = int(metadata["request_start_ns"])
                first_ns = send_ns + round(metrics["time_to_first_token"]["value"] * 1e6)
                gaps_ms = metrics.get("inter_chunk_latency", {}).get("value") or []
                arrivals = [first_ns]
                for gap_ms in gaps_ms:
                    arrivals.append(arrivals[-1] + round(gap_ms * 1e6))
                observed.append(
                    ObservedRequest(
                        # The simulator names its response "cmpl-" + the X-Request-ID header.
                        response_id="cmpl-" + metadata["x_request_id"],
                        send_ns=send_ns,
                        first_token_ns=first_ns,
                        token_arrival_ns=tuple(arrivals),
                        clock="wall",
                    )
                )
        return ToolOutcome(completed=len(observed), failed=failed, observed=observed)


class GuideLLMTool:
    """guidellm, installed by scripts/install_bench_tools.sh. It records only the first and
    last token of each request, so it gets a TTFT error and no ITL error."""

    name = "guidellm"
    # The tokenizer is a local folder, so nothing may be fetched from a model hub.
    extra_env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

    def __init__(self, executable: Path, tokenizer_dir: Path) -> None:
        self.executable = executable
        self.tokenizer_dir = tokenizer_dir

    def command(self, plan: LevelPlan, base_url: str, work_dir: Path) -> list[str]:
        return [
            str(self.executable), "run",
            "--backend", f"kind=openai_http,target={base_url},model={MODEL_NAME},request_format=/v1/completions",
            "--profile", f"kind=concurrent,streams={plan.concurrency}",
            "--constraint", f"kind=max_requests,count={plan.requests}",
            "--tokenizer", f"kind=huggingface_auto,model={self.tokenizer_dir}",
            "--data", f"kind=synthetic_text,prompt_tokens={plan.isl},output_tokens={plan.osl}",
            "--output", f"kind=json,path={work_dir / 'benchmarks.json'}",
            "--disable-console-interactive",
        ]

    def read_outcome(self, work_dir: Path) -> ToolOutcome:
        with open(work_dir / "benchmarks.json", encoding="utf-8") as report_file:
            report = json.load(report_file)
        benchmark = report["benchmarks"][0]
        requests_made = benchmark["scheduler_metrics"]["requests_made"]
        observed = []
        for request in benchmark["requests"]["successful"]:
            timings = request["info"]["timings"]
            first_s = timings.get("first_token_iteration")
            if first_s is None or not math.isfinite(first_s):
                continue
            observed.append(
                ObservedRequest(
                    response_id=request.get("response_id"),
                    send_ns=round(timings["request_start"] * 1e9),
                    first_token_ns=round(first_s * 1e9),
                    token_arrival_ns=None,
                    clock="wall",
                )
            )
        failed = int(requests_made.get("errored", 0)) + int(requests_made.get("incomplete", 0))
        return ToolOutcome(completed=len(observed), failed=failed, observed=observed)
