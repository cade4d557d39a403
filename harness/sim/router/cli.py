"""Command line of the router, `python -m harness sim router ...`: serve until SIGTERM or SIGINT."""

import argparse
import asyncio
import logging
from pathlib import Path
from urllib.parse import urlsplit

from harness.sim.arg_types import non_negative_float, non_negative_int, positive_float
from harness.sim.router.app import CONTEXT_KEY, RouterSettings, build_router_app
from harness.sim.router.pool import Policy
from harness.sim.router.transfer import KvTransferModel
from harness.sim.serving import start_site, wait_for_stop_signal

logger = logging.getLogger(__name__)


def worker_url(text: str) -> str:
    """Return the worker's base URL without a trailing slash."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(
            f"must be a worker's base URL such as http://127.0.0.1:8001, got {text!r}"
        )
    return text.rstrip("/")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness sim router",
        description=(
            "OpenAI-compatible router of a disaggregated simulated engine: each request is "
            "prefilled by a prefill worker, waits for the KV transfer time, then streams "
            "from a decode worker."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8000,
        help="TCP port, 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--model-name", default="tiny",
        help="served model name, which every worker must serve too (default: %(default)s)",
    )

    parser.add_argument(
        "--prefill", type=worker_url, nargs="+", required=True, metavar="URL",
        help="base URLs of the prefill-role workers",
    )
    parser.add_argument(
        "--decode", type=worker_url, nargs="+", required=True, metavar="URL",
        help="base URLs of the decode-role workers",
    )
    parser.add_argument(
        "--policy", type=Policy, default=Policy.ROUND_ROBIN, choices=list(Policy),
        metavar="{" + ",".join(policy.value for policy in Policy) + "}",
        help=(
            "how a worker is chosen in each pool: in turn, or the one with the fewest "
            "requests in flight from this router (default: round_robin)"
        ),
    )

    parser.add_argument(
        "--kv-bytes-per-token", type=non_negative_int, default=0,
        help="KV cache bytes per prompt token that move to the decode worker (default: 0)",
    )
    parser.add_argument(
        "--kv-bandwidth-gbps", type=positive_float, default=50.0,
        help="KV transfer bandwidth in GB/s, 10^9 bytes per second (default: %(default)s)",
    )
    parser.add_argument(
        "--kv-latency-us", type=non_negative_float, default=0.0,
        help="fixed time of each KV transfer, in microseconds (default: %(default)s)",
    )

    parser.add_argument(
        "--token-log", type=Path, default=None,
        help="append one JSON line per finished request with the times that the router "
        "forwarded its tokens",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default: %(default)s)",
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> RouterSettings:
    return RouterSettings(
        model_name=args.model_name,
        prefill_urls=tuple(args.prefill),
        decode_urls=tuple(args.decode),
        policy=args.policy,
        transfer=KvTransferModel(
            kv_bytes_per_token=args.kv_bytes_per_token,
            bandwidth_gbps=args.kv_bandwidth_gbps,
            latency_us=args.kv_latency_us,
        ),
        token_log_path=args.token_log,
    )


def main(argv: list[str] | None = None) -> int:
    """Serve the router until SIGTERM or SIGINT, then return 0.

    Raises LaunchError when the address cannot be bound.
    """
    args = build_parser().parse_args(argv)
    # basicConfig does nothing when the caller (the harness CLI) has configured logging.
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve(settings_from_args(args), args.host, args.port))
    return 0


async def serve(settings: RouterSettings, host: str, port: int) -> None:
    """Run the router on host:port until the process receives SIGTERM or SIGINT."""
    app = build_router_app(settings)
    runner, bound_port = await start_site(app, host, port, "simulated engine router")
    transfer = settings.transfer
    logger.info(
        "Simulated engine router listening on http://%s:%d: model %s, prefill %s, decode %s, "
        "policy %s, kv_bytes_per_token %d, kv_bandwidth_gbps %g, kv_latency_us %g, token log %s",
        host, bound_port, settings.model_name, " ".join(settings.prefill_urls),
        " ".join(settings.decode_urls), settings.policy.value, transfer.kv_bytes_per_token,
        transfer.bandwidth_gbps, transfer.latency_us, settings.token_log_path or "off",
    )

    await wait_for_stop_signal()
    stats = app[CONTEXT_KEY].stats
    await runner.cleanup()
    logger.info(
        "Simulated engine router stopped after %d requests (%d succeeded, %d failed)",
        stats.requests_total, stats.request_success_total, stats.request_failure_total,
    )
