"""Command-line entry point: `python -m harness <command>`.

Each subcommand parses its arguments here and calls one function of a subpackage; this
is also the only place that configures logging.
"""

import argparse
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

from harness.errors import HarnessError

logger = logging.getLogger("harness")

BENCH_EPILOG = """\
required keys:
  endpoint.url=URL          base URL of the OpenAI-compatible server, e.g. http://127.0.0.1:8000
  endpoint.model=NAME       served model name, as listed by GET /v1/models
  output_dir=DIR            folder for config.yaml, levels/, summary.parquet, server_metrics.parquet

common keys:
  workload.isl=N workload.osl=M     input and output tokens per request
  bench.concurrency=[1,4,16]        closed-loop levels
  bench.request_rate=[2.0,4.0]      open-loop levels in requests/s instead (bench.max_concurrency caps them)
  bench.requests_per_level=K        measured requests per level, after bench.warmup_requests
  engine=NAME                       engine config whose Prometheus metric names are sampled
  parallelism=NAME                  the server's parallelism, which gives the GPU count for per-GPU figures
  endpoint.api_key_env=VAR          environment variable that contains the API key (the key is never written)

example:
  python -m harness bench endpoint.url=http://127.0.0.1:8000 endpoint.model=tiny \\
      workload.isl=1024 workload.osl=128 'bench.concurrency=[1,8,32]' bench.requests_per_level=96 \\
      output_dir=bench/tiny
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Benchmark LLM serving engines for disaggregated prefill and decode, and "
        "compute the xPyD split that rate-matches them.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True)

    sweep = commands.add_parser(
        "sweep", help="run a sweep of points (python -m harness sweep +experiment=prefill_dep8)"
    )
    sweep.add_argument("overrides", nargs="*", help="Hydra overrides; a=1,2 sweeps an axis")
    sweep.add_argument("--dry-run", action="store_true",
                       help="print the plan and each worker's command, submit nothing")
    sweep.add_argument("--force", action="store_true", help="measure points again even if done")

    bench = commands.add_parser(
        "bench",
        help="measure load levels against a server that is already running",
        description="Measure load levels against a server that is already running, and write "
                    "each level's requests and summary, a summary table and the server's "
                    "/metrics time series to output_dir.",
        epilog=BENCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("overrides", nargs="*", help="config overrides (key=value); see the required keys below")
    bench.add_argument("--force", action="store_true",
                       help="measure levels again even if their summary.json exists in output_dir")

    status = commands.add_parser(
        "status", help="show each point of a sweep: state, job, levels and log",
        description="Show every point of a sweep folder: its state (from status.json and, for "
                    "SLURM jobs, sacct), its job id, its level progress and its job log.",
    )
    status.add_argument("sweep_dir", help="sweep folder, results/<experiment>/<timestamp>")

    cancel = commands.add_parser(
        "cancel", help="cancel the queued and running SLURM jobs of a sweep",
        description="scancel the jobs of a sweep folder that are still queued or running, wait "
                    "until SLURM has ended them, and mark their points cancelled in status.json.",
    )
    cancel.add_argument("sweep_dir", help="sweep folder, results/<experiment>/<timestamp>")
    cancel.add_argument("--wait-s", type=float, default=60.0,
                        help="seconds to wait for the jobs to end before marking them (default: 60)")

    commands.add_parser("sim", help="start the simulated engine (see `harness sim --help`)",
                        add_help=False)

    collect = commands.add_parser("collect", help="collect result folders into one Parquet table")
    collect.add_argument("paths", nargs="+", help="results, experiment, sweep or point folders")
    collect.add_argument("--output", help="Parquet file to write (default: <first path>/results.parquet)")

    report = commands.add_parser("report", help="write an HTML report with PNG plots of result folders")
    report.add_argument("paths", nargs="+", help="results, experiment, sweep or point folders")
    report.add_argument("--output", help="folder for index.html and the PNG files (default: <first path>/report)")

    solve = commands.add_parser("solve", help="rate-matching: the xPyD split from measured points")
    solve.add_argument(
        "args", nargs="*",
        help="result folders or .parquet tables (default: results_dir), and overrides such as "
             "bench.slo.ttft_ms=2000 bench.slo.itl_ms=50 solver.gpu_budget=256 workload.isl=8192",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    # The simulator has its own parser and logging, because it runs as a server process.
    if argv[:1] == ["sim"]:
        from harness.sim.server import main as sim_main

        return sim_main(argv[1:])

    args = build_parser().parse_args(argv)
    # Piped output (CI logs, files) gets wide tables instead of rich's 80-column default.
    console = Console() if sys.stdout.isatty() else Console(width=200)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    try:
        return _dispatch(args, console)
    except HarnessError as error:
        # Messages quote config values and Hydra's [a, b] lists, which are not rich markup.
        console.print(Text.assemble(("error: ", "red"), str(error)), soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("interrupted; finished points and levels are kept on disk")
        return 130


def _dispatch(args: argparse.Namespace, console: Console) -> int:
    if args.command == "sweep":
        from harness.launch.sweep import sweep_command

        return sweep_command(args.overrides, dry_run=args.dry_run, force=args.force, console=console)
    if args.command == "bench":
        from harness.loadgen.command import bench_command

        return bench_command(args.overrides, force=args.force, console=console)
    if args.command == "status":
        from harness.launch.control import status_command

        return status_command(Path(args.sweep_dir), console)
    if args.command == "cancel":
        from harness.launch.control import cancel_command

        return cancel_command(Path(args.sweep_dir), console, wait_s=args.wait_s)
    if args.command == "collect":
        from harness.results.collect import collect_command

        return collect_command(args.paths, args.output)
    if args.command == "report":
        from harness.report.command import report_command

        return report_command(args.paths, args.output, console)
    if args.command == "solve":
        from harness.solver.command import solve_command

        return solve_command(args.args, console)
    raise AssertionError(f"unhandled command {args.command}")
