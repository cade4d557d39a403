"""Run one closed-loop level of the harness load generator and save its records.

The benchmark starts this module as its own process, pinned with taskset, so that its
CPU time can be read from /proc like that of the other load generators:

    python -m benchmarks.harness_client --url http://127.0.0.1:8000 --concurrency 64 \
        --requests 512 --isl 16 --osl 256 --output-dir DIR

It writes DIR/requests.parquet (one raw record per request) and DIR/summary.json.
"""

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from harness.loadgen.records import write_records_parquet
from harness.loadgen.runner import LevelSpec, run_level
from harness.results.io import write_json_atomic

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--model", default="tiny", help="served model name (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, required=True, help="requests in flight")
    parser.add_argument("--requests", type=int, required=True, help="measured requests")
    parser.add_argument("--warmup", type=int, default=0, help="warmup requests (default: %(default)s)")
    parser.add_argument("--isl", type=int, required=True, help="prompt length in tokens")
    parser.add_argument("--osl", type=int, required=True, help="output length in tokens")
    parser.add_argument(
        "--processes", type=int, default=1,
        help="load generator processes; above 1 needs LevelSpec.client_processes (default: 1)",
    )
    parser.add_argument("--timeout-s", type=float, default=120.0, help="timeout of one request")
    parser.add_argument("--output-dir", type=Path, required=True, help="folder for the records")
    return parser


def supports_client_processes() -> bool:
    """Return whether this version of harness can spread a level over several processes."""
    return any(spec_field.name == "client_processes" for spec_field in dataclasses.fields(LevelSpec))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    spec = LevelSpec(
        base_url=args.url,
        model=args.model,
        endpoint="completions",
        isl=args.isl,
        osl=args.osl,
        concurrency=args.concurrency,
        num_requests=args.requests,
        warmup_requests=args.warmup,
        timeout_s=args.timeout_s,
        vocab_size=32000,
        seed=0,
        num_gpus=1,
        slo_ttft_ms=None,
        slo_itl_ms=None,
        slo_percentile=99,
    )
    if supports_client_processes():
        # Set even for 1, because None lets harness pick a count from the load.
        spec = dataclasses.replace(spec, client_processes=args.processes)
    elif args.processes != 1:
        print(
            f"--processes {args.processes} needs LevelSpec.client_processes, which this "
            "version of harness.loadgen does not have; use --processes 1",
            file=sys.stderr,
        )
        return 2

    result = run_level(spec)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    write_records_parquet(args.output_dir / "requests.parquet", result.records)
    write_json_atomic(args.output_dir / "summary.json", result.summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
