"""Benchmark the harness load generator against the simulator's ground truth and other tools.

    python -m benchmarks.loadgen_bench [--quick]

Starts `harness sim` with a fixed step time and no per-token cost, pinned to one CPU,
and runs every load generator pinned to another CPU at the same concurrencies. Per
level it reports the stream events per second that the server emitted, the client's
CPU time per event, the server's own CPU share, and the TTFT and ITL errors against the
simulator's token log. It prints a Markdown table and the targets, and writes JSON
under benchmarks/results/. See benchmarks/README.md.
"""

import argparse
import datetime
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.clients import AIPerfTool, GuideLLMTool, HarnessTool, LevelPlan, LoadGenerator
from benchmarks.ground_truth import measure_accuracy, read_token_log
from benchmarks.harness_client import supports_client_processes
from benchmarks.machine import REPO_DIR, machine_facts
from benchmarks.report import LevelRow, best_row, evaluate_targets, judge_row, render_table
from benchmarks.sampling import Sampler, steady_window
from benchmarks.sim_process import SimServer, start_sim, stop_sim
from benchmarks.tokenizer import write_byte_tokenizer
from harness.errors import ConfigError, HarnessError
from harness.results.io import write_json_atomic

logger = logging.getLogger("benchmarks.loadgen_bench")

RESULTS_DIR = REPO_DIR / "benchmarks" / "results"
VENV_DIR = REPO_DIR / ".venv-bench"
LEVEL_TIMEOUT_S = 600.0
TOOL_NAMES = ("harness", "aiperf", "guidellm")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(item) for item in text.split(",") if item]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1 separated by commas, got {text!r}")
    return values


def parse_cpu_list(text: str) -> set[int]:
    """Parse a taskset CPU list such as "0", "0,2" or "1-3" into a set of CPU numbers."""
    cpus: set[int] = set()
    for item in text.split(","):
        first, _, last = item.partition("-")
        try:
            cpus.update(range(int(first), int(last or first) + 1))
        except ValueError:
            raise ConfigError(f"invalid CPU list {text!r}; use numbers and ranges such as 0,2 or 1-3") from None
    return cpus


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two levels and fewer requests, about 2 minutes")
    parser.add_argument("--concurrency", type=_int_list, help="levels, e.g. 8,32,128 (default: by --quick)")
    parser.add_argument(
        "--waves", type=int,
        help="requests per level = waves x concurrency (default: 4 with --quick, else 6)",
    )
    parser.add_argument(
        "--client-processes", type=_int_list,
        help="harness worker processes to measure, e.g. 1,2 (default: 1, plus 2 when harness "
        "supports LevelSpec.client_processes and --quick is not given)",
    )

    parser.add_argument("--tools", default=",".join(TOOL_NAMES), help="comma-separated tools (default: %(default)s)")
    parser.add_argument("--isl", type=int, default=16, help="prompt tokens (default: %(default)s)")
    parser.add_argument("--osl", type=int, default=256, help="output tokens (default: %(default)s)")
    parser.add_argument(
        "--step-us", type=float, default=1000.0,
        help="simulator step time in microseconds; events/s = running requests x steps/s (default: %(default)s)",
    )

    parser.add_argument("--server-cpus", default="0", help="taskset CPU list of the simulator (default: %(default)s)")
    parser.add_argument("--client-cpus", default="1", help="taskset CPU list of the load generators (default: %(default)s)")
    parser.add_argument(
        "--max-server-cpu-share", type=float, default=0.8,
        help="server CPU share (1.0 = one core) from which a level is invalid (default: %(default)s)",
    )
    parser.add_argument(
        "--max-server-wait-share", type=float, default=0.1,
        help="share of time the server may wait for its CPU (held by other processes) before a "
        "level is invalid (default: %(default)s)",
    )

    parser.add_argument("--sample-interval-s", type=float, default=0.1, help="sampling period (default: %(default)s)")
    parser.add_argument("--venv-dir", type=Path, default=VENV_DIR, help="venvs of scripts/install_bench_tools.sh")
    parser.add_argument("--work-dir", type=Path, help="folder for logs and tool outputs (default: a new temporary folder)")
    parser.add_argument("--output", type=Path, help="JSON result file (default: benchmarks/results/loadgen-<UTC time>.json)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    return parser


def build_tools(names: list[str], venv_dir: Path, tokenizer_dir: Path) -> list[LoadGenerator]:
    """Return the tools to run, skipping with a warning those whose venv is missing."""
    tools: list[LoadGenerator] = []
    for name in names:
        if name == "harness":
            tools.append(HarnessTool())
            continue
        if name not in TOOL_NAMES:
            raise ConfigError(f"unknown tool {name!r} in --tools; choose from {', '.join(TOOL_NAMES)}")
        executable = venv_dir / name / "bin" / name
        if not executable.exists():
            logger.warning("%s is not installed at %s; run scripts/install_bench_tools.sh %s", name, executable, name)
            continue
        tool_class = AIPerfTool if name == "aiperf" else GuideLLMTool
        tools.append(tool_class(executable, tokenizer_dir))
    return tools


def run_level(
    tool: LoadGenerator, plan: LevelPlan, purpose: str, server: SimServer, args: argparse.Namespace, work_dir: Path
) -> LevelRow:
    """Run one level of one tool while sampling, then read its records and the token log."""
    level_dir = work_dir / f"{tool.name}-p{plan.processes}-c{plan.concurrency}-{purpose.replace(' ', '-')}"
    level_dir.mkdir(parents=True, exist_ok=True)
    log_offset_bytes = server.token_log_path.stat().st_size if server.token_log_path.exists() else 0

    env = {**os.environ, **tool.extra_env}
    argv = ["taskset", "-c", args.client_cpus, *tool.command(plan, server.base_url, level_dir)]
    logger.info("%s: %d requests at concurrency %d (%s)", tool.name, plan.requests, plan.concurrency, purpose)
    logger.debug("command: %s", argv)

    started_s = time.monotonic()
    with open(level_dir / "tool.log", "wb") as tool_log:
        # A session of its own, so that a timeout can stop the tool's worker processes too.
        process = subprocess.Popen(
            argv, cwd=level_dir, env=env, stdout=tool_log, stderr=subprocess.STDOUT, start_new_session=True
        )
        sampler = Sampler(server.metrics_url, server.process.pid, process.pid, args.sample_interval_s)
        sampler.start()
        try:
            exit_code = process.wait(timeout=LEVEL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.error(
                "%s timed out after %s s; killing its process group %d", tool.name, LEVEL_TIMEOUT_S, process.pid
            )
            os.killpg(process.pid, signal.SIGKILL)
            exit_code = process.wait()
        samples = sampler.stop()

    row = LevelRow(
        tool=tool.name, processes=plan.processes, concurrency=plan.concurrency,
        requests=plan.requests, purpose=purpose, exit_code=exit_code,
    )
    row.window = steady_window(samples)
    if exit_code == 0:
        try:
            outcome = tool.read_outcome(level_dir)
        except (OSError, ValueError, KeyError) as error:
            row.notes.append(f"output not readable: {error}")
        else:
            row.completed, row.failed = outcome.completed, outcome.failed
            truth, _ = read_token_log(server.token_log_path, log_offset_bytes)
            row.accuracy = measure_accuracy(outcome.observed, truth, skip_first=plan.concurrency)
    else:
        logger.error("%s exited with code %d; see %s", tool.name, exit_code, level_dir / "tool.log")

    judge_row(row, args.max_server_cpu_share, args.max_server_wait_share)
    logger.info(
        "%s c=%d: %.0f events/s, client %.0f%% CPU, server %.0f%% CPU in %.1f s%s",
        tool.name, plan.concurrency,
        row.window.events_per_s if row.window else 0.0,
        100 * row.window.client_cpu_share if row.window else 0.0,
        100 * row.window.server_cpu_share if row.window else 0.0,
        time.monotonic() - started_s,
        "" if row.valid else " (invalid: " + "; ".join(row.flags) + ")",
    )
    return row


def half_max_plan(rows: list[LevelRow], args: argparse.Namespace, waves: int) -> LevelPlan | None:
    """Plan a one-process harness level whose event rate is about half of the best valid
    one-process rate.

    One process, because requests of several processes can only be matched to the token
    log approximately. Every running request gets one token per step, so the concurrency
    is the target rate divided by the steps per second measured at the lowest valid load.
    """
    harness_rows = [row for row in rows if row.tool == "harness" and row.processes == 1]
    best = best_row(harness_rows, "events_per_s")
    valid = [row for row in harness_rows if row.valid and row.window is not None]
    if best is None or best.window is None or not valid:
        return None
    lowest = min(valid, key=lambda row: row.concurrency)
    assert lowest.window is not None
    concurrency = max(1, round(best.window.events_per_s / 2 / lowest.window.steps_per_s))
    # Twice the waves of a sweep level, for more samples in the p99 errors.
    return LevelPlan(concurrency, concurrency * waves * 2, args.isl, args.osl, processes=1)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    server_cpus = parse_cpu_list(args.server_cpus)
    overlap = server_cpus & parse_cpu_list(args.client_cpus)
    if overlap:
        raise ConfigError(
            f"--server-cpus {args.server_cpus} and --client-cpus {args.client_cpus} share CPUs "
            f"{sorted(overlap)}; give the server and the client separate CPUs"
        )

    concurrencies = args.concurrency or ([32, 128] if args.quick else [8, 32, 64, 128, 256])
    waves = args.waves or (4 if args.quick else 6)
    processes_list = args.client_processes or ([1, 2] if supports_client_processes() and not args.quick else [1])

    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="loadgen-bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    tools = build_tools([name for name in args.tools.split(",") if name], args.venv_dir, write_byte_tokenizer(work_dir / "tokenizer"))
    facts = machine_facts({tool.name: args.venv_dir / tool.name / "bin" / "python" for tool in tools if tool.name != "harness"})
    logger.info("work folder %s; machine %s, %s CPUs", work_dir, facts["cpu_model"], facts["logical_cpus"])

    # The sampler thread shares the server's CPU, so that it takes nothing from the client.
    os.sched_setaffinity(0, server_cpus)
    server = start_sim(args.server_cpus, args.step_us, work_dir)
    rows: list[LevelRow] = []
    half_row = None
    try:
        for tool in tools:
            for processes in processes_list if tool.name == "harness" else [1]:
                for concurrency in concurrencies:
                    plan = LevelPlan(concurrency, concurrency * waves, args.isl, args.osl, processes)
                    rows.append(run_level(tool, plan, "sweep", server, args, work_dir))
            if tool.name == "harness" and (plan := half_max_plan(rows, args, waves)) is not None:
                half_row = run_level(tool, plan, "half max", server, args, work_dir)
                rows.append(half_row)
    finally:
        stop_sim(server)

    table = render_table(rows)
    targets = evaluate_targets(rows, half_row)
    print(table)
    print()
    for name, target in targets.items():
        print(f"{name}: {target['result'].upper()}: {target['target']}")
        print("   ", {key: value for key, value in target.items() if key not in ("target", "result")})

    created = datetime.datetime.now(datetime.timezone.utc)
    suffix = "-quick" if args.quick else ""
    output = args.output or RESULTS_DIR / f"loadgen-{created:%Y%m%dT%H%M%SZ}{suffix}.json"
    write_json_atomic(
        output,
        {
            "benchmark": "loadgen",
            "created_utc": created.isoformat(timespec="seconds"),
            "command": [sys.executable, "-m", "benchmarks.loadgen_bench", *(argv if argv is not None else sys.argv[1:])],
            "machine": facts,
            "settings": {
                "concurrency": concurrencies, "waves": waves, "client_processes": processes_list,
                "isl": args.isl, "osl": args.osl, "step_us": args.step_us,
                "server_cpus": args.server_cpus, "client_cpus": args.client_cpus,
                "max_server_cpu_share": args.max_server_cpu_share,
                "max_server_wait_share": args.max_server_wait_share, "sample_interval_s": args.sample_interval_s,
                "tools": [tool.name for tool in tools], "work_dir": str(work_dir),
            },
            "rows": [row.to_json() for row in rows],
            "targets": targets,
            "table_markdown": table,
        },
    )
    print(f"\nwrote {output}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except HarnessError as error:
        logger.error("%s", error)
        raise SystemExit(2) from None
