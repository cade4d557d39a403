"""Start an aiohttp application on a TCP port and wait for SIGTERM or SIGINT.

The simulated engine and its router share this, so both stop the same way.
"""

import asyncio
import logging
import signal

from aiohttp import web

from harness.errors import LaunchError

logger = logging.getLogger(__name__)

# A load generator opens thousands of connections at once, more than aiohttp's default
# backlog of 128 queues. The kernel caps this value at net.core.somaxconn.
LISTEN_BACKLOG = 4096
SHUTDOWN_TIMEOUT_S = 5.0


async def start_site(
    app: web.Application, host: str, port: int, server_name: str
) -> tuple[web.AppRunner, int]:
    """Start app on host:port and return its runner and the bound port.

    handler_cancellation=True makes aiohttp cancel a handler whose client disconnects, so
    the handler's cleanup runs at once. Raises LaunchError when the address cannot be bound.
    """
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
            f"{server_name} cannot listen on {host}:{port}: {exc}. Pick another --port "
            "or stop the process that uses it"
        ) from exc
    return runner, runner.addresses[0][1]


async def wait_for_stop_signal() -> None:
    """Return when the process receives SIGTERM or SIGINT."""
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _request_stop, stop_requested, signum)
    await stop_requested.wait()


def _request_stop(stop_requested: asyncio.Event, signum: int) -> None:
    logger.info("Received %s, stopping", signal.Signals(signum).name)
    stop_requested.set()
