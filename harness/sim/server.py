"""Command line of the simulated engine: parse flags, serve until SIGTERM or SIGINT.

Run it as `python -m harness sim ...` or `python -m harness.sim.server ...`.
"""

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from aiohttp import web

from harness.config.schema import SimProfile
from harness.errors import HarnessError, LaunchError
from harness.sim.app import SCHEDULER_KEY, ServerSettings, build_app
from harness.sim.model import StepCostModel
from harness.sim.scheduler import EngineLimits

logger = logging.getLogger(__name__)

# A load generator opens thousands of connections at once, more than aiohttp's default
# backlog of 128 queues. The kernel caps this value at net.core.somaxconn.
LISTEN_BACKLOG = 4096
SHUTDOWN_TIMEOUT_S = 5.0


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    profile = SimProfile()
    parser = argparse.ArgumentParser(
        prog="harness sim",
        description=(
            "OpenAI-compatible server whose timing follows a continuous-batching step model."
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
        "--model-name", default="tiny", help="served model name (default: %(default)s)"
    )

    parser.add_argument(
        "--context-length", type=_positive_int, default=4096,
        help="maximum prompt + max_tokens per request, in tokens (default: %(default)s)",
    )
    parser.add_argument(
        "--max-running-requests", type=_positive_int, default=256,
        help="maximum requests in the batch at once (default: %(default)s)",
    )
    parser.add_argument(
        "--chunked-prefill-size", type=_positive_int, default=8192,
        help="maximum prefill tokens per step (default: %(default)s)",
    )
    parser.add_argument(
        "--kv-capacity-tokens", type=_positive_int, default=profile.kv_capacity_tokens,
        help=(
            "KV cache size in tokens, of which each request reserves prompt + max_tokens "
            "(default: %(default)s)"
        ),
    )

    parser.add_argument(
        "--step-overhead-us", type=_non_negative_float, default=profile.step_overhead_us,
        help="fixed time of every step, in microseconds (default: %(default)s)",
    )
    parser.add_argument(
        "--prefill-us-per-token", type=_non_negative_float, default=profile.prefill_us_per_token,
        help="step time per prefill token, in microseconds (default: %(default)s)",
    )
    parser.add_argument(
        "--decode-us-per-seq", type=_non_negative_float, default=profile.decode_us_per_seq,
        help="step time per decoding request, in microseconds (default: %(default)s)",
    )
    parser.add_argument(
        "--context-us-per-token", type=_non_negative_float, default=profile.context_us_per_token,
        help=(
            "step time per context token of the decoding requests, in microseconds "
            "(default: %(default)s)"
        ),
    )

    parser.add_argument(
        "--token-log", type=Path, default=None,
        help="append one JSON line of token emission times per finished request to this file",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default: %(default)s)",
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    return ServerSettings(
        model_name=args.model_name,
        context_length=args.context_length,
        cost=StepCostModel(
            step_overhead_us=args.step_overhead_us,
            prefill_us_per_token=args.prefill_us_per_token,
            decode_us_per_seq=args.decode_us_per_seq,
            context_us_per_token=args.context_us_per_token,
        ),
        limits=EngineLimits(
            max_running_requests=args.max_running_requests,
            chunked_prefill_size=args.chunked_prefill_size,
            kv_capacity_tokens=args.kv_capacity_tokens,
        ),
        token_log_path=args.token_log,
    )


def main(argv: list[str] | None = None) -> int:
    """Serve the simulated engine until SIGTERM or SIGINT, then return 0.

    Raises LaunchError when the address cannot be bound.
    """
    args = build_parser().parse_args(argv)
    # basicConfig does nothing when the caller (the harness CLI) has configured logging.
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve(settings_from_args(args), args.host, args.port))
    return 0


async def serve(settings: ServerSettings, host: str, port: int) -> None:
    """Run the server on host:port until the process receives SIGTERM or SIGINT."""
    app = build_app(settings)
    runner = web.AppRunner(
        app, handler_cancellation=True, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=LISTEN_BACKLOG)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise LaunchError(
            f"simulated engine cannot listen on {host}:{port}: {exc}. Pick another --port "
            "or stop the process that uses it"
        ) from exc

    bound_port = runner.addresses[0][1]
    cost, limits = settings.cost, settings.limits
    logger.info(
        "Simulated engine listening on http://%s:%d: model %s, context_length %d, "
        "max_running_requests %d, chunked_prefill_size %d, kv_capacity_tokens %d, "
        "step_overhead_us %g, prefill_us_per_token %g, decode_us_per_seq %g, "
        "context_us_per_token %g, token log %s",
        host, bound_port, settings.model_name, settings.context_length, limits.max_running_requests,
        limits.chunked_prefill_size, limits.kv_capacity_tokens, cost.step_overhead_us,
        cost.prefill_us_per_token, cost.decode_us_per_seq, cost.context_us_per_token,
        settings.token_log_path or "off",
    )

    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _request_stop, stop_requested, signum)
    await stop_requested.wait()

    # Stopping the scheduler first ends every open stream with an error event, so the
    # runner does not wait for handlers until its shutdown timeout.
    await app[SCHEDULER_KEY].stop()
    await runner.cleanup()
    stats = app[SCHEDULER_KEY].stats()
    logger.info(
        "Simulated engine stopped after %d requests, %d steps",
        stats.request_success_total,
        stats.steps_total,
    )


def _request_stop(stop_requested: asyncio.Event, signum: int) -> None:
    logger.info("Received %s, stopping", signal.Signals(signum).name)
    stop_requested.set()


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except HarnessError as error:
        logger.error("%s", error)
        raise SystemExit(2) from None
