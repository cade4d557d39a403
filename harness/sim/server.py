"""Command line of the simulated engine: parse flags, serve until SIGTERM or SIGINT.

Run it as `python -m harness sim ...` or `python -m harness.sim.server ...`. With `router`
as the first argument (`python -m harness sim router ...`) it runs the disaggregated
router of harness/sim/router/ instead.
"""

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from harness.config.schema import SimProfile
from harness.errors import HarnessError
from harness.sim.app import SCHEDULER_KEY, ServerSettings, build_app
from harness.sim.arg_types import non_negative_float, positive_float, positive_int
from harness.sim.model import StepCostModel
from harness.sim.roles import Role
from harness.sim.scheduler import DEFAULT_KV_HOLD_TIMEOUT_S, EngineLimits
from harness.sim.serving import start_site, wait_for_stop_signal

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    profile = SimProfile()
    parser = argparse.ArgumentParser(
        prog="harness sim",
        description=(
            "OpenAI-compatible server whose timing follows a continuous-batching step model."
        ),
        epilog="`harness sim router --help` describes the router of disaggregated runs.",
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
        "--role", type=Role, default=Role.AGGREGATED, choices=list(Role),
        metavar="{" + ",".join(role.value for role in Role) + "}",
        help=(
            "worker role: aggregated serves whole requests, prefill generates only the first "
            "token, and decode serves only requests prefilled elsewhere, which "
            "`harness sim router` sends (default: aggregated)"
        ),
    )
    parser.add_argument(
        "--kv-hold-timeout-s", type=positive_float, default=DEFAULT_KV_HOLD_TIMEOUT_S,
        help=(
            "prefill role: seconds that a request's KV stays reserved for its hand-off when "
            "the router does not release it (default: %(default)s)"
        ),
    )

    parser.add_argument(
        "--context-length", type=positive_int, default=4096,
        help="maximum prompt + max_tokens per request, in tokens (default: %(default)s)",
    )
    parser.add_argument(
        "--max-running-requests", type=positive_int, default=256,
        help="maximum requests in the batch at once (default: %(default)s)",
    )
    parser.add_argument(
        "--chunked-prefill-size", type=positive_int, default=8192,
        help="maximum prefill tokens per step (default: %(default)s)",
    )
    parser.add_argument(
        "--kv-capacity-tokens", type=positive_int, default=profile.kv_capacity_tokens,
        help=(
            "KV cache size in tokens, of which each request reserves prompt + max_tokens "
            "(default: %(default)s)"
        ),
    )

    parser.add_argument(
        "--step-overhead-us", type=non_negative_float, default=profile.step_overhead_us,
        help="fixed time of every step, in microseconds (default: %(default)s)",
    )
    parser.add_argument(
        "--prefill-us-per-token", type=non_negative_float, default=profile.prefill_us_per_token,
        help="step time per prefill token, in microseconds (default: %(default)s)",
    )
    parser.add_argument(
        "--decode-us-per-seq", type=non_negative_float, default=profile.decode_us_per_seq,
        help="step time per decoding request, in microseconds (default: %(default)s)",
    )
    parser.add_argument(
        "--context-us-per-token", type=non_negative_float, default=profile.context_us_per_token,
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
        role=args.role,
        kv_hold_timeout_s=args.kv_hold_timeout_s,
    )


def main(argv: list[str] | None = None) -> int:
    """Serve the simulated engine until SIGTERM or SIGINT, then return 0.

    Raises LaunchError when the address cannot be bound.
    """
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["router"]:
        from harness.sim.router.cli import main as router_main

        return router_main(argv[1:])

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
    runner, bound_port = await start_site(app, host, port, "simulated engine")
    cost, limits = settings.cost, settings.limits
    logger.info(
        "Simulated %s engine listening on http://%s:%d: model %s, context_length %d, "
        "max_running_requests %d, chunked_prefill_size %d, kv_capacity_tokens %d, "
        "step_overhead_us %g, prefill_us_per_token %g, decode_us_per_seq %g, "
        "context_us_per_token %g, kv_hold_timeout_s %g, token log %s",
        settings.role.value, host, bound_port, settings.model_name, settings.context_length,
        limits.max_running_requests, limits.chunked_prefill_size, limits.kv_capacity_tokens,
        cost.step_overhead_us, cost.prefill_us_per_token, cost.decode_us_per_seq,
        cost.context_us_per_token, settings.kv_hold_timeout_s, settings.token_log_path or "off",
    )

    await wait_for_stop_signal()

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


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except HarnessError as error:
        logger.error("%s", error)
        raise SystemExit(2) from None
