"""Readiness: poll each process's health paths until all return 200, watching for early exits."""

import logging
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.engines.readiness import listed_workers
from harness.errors import LaunchError
from harness.launch.processes import ManagedProcess, tail

logger = logging.getLogger(__name__)

# A direct connection: the servers run on the job's own nodes, where an HTTP proxy from
# the environment (http_proxy) would only get in the way.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class WorkerListTarget:
    """A router's list of workers, ready once it lists at least `expected` matching entries."""

    path: str
    list_key: str
    match: Mapping[str, str]
    expected: int


@dataclass(frozen=True)
class ReadyCheck:
    """One process to wait for; base_url None only watches it for an exit, e.g. the other
    nodes of a multi-node worker, which serve no HTTP."""

    process: ManagedProcess
    base_url: str | None
    paths: tuple[str, ...] = ()
    worker_list: WorkerListTarget | None = None


def probe(url: str, timeout_s: float = 2.0) -> int | None:
    """GET url and return the HTTP status, or None when the connection fails."""
    try:
        with _OPENER.open(url, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


def wait_until_ready(
    checks: Sequence[ReadyCheck],
    timeout_s: float,
    poll_interval_s: float,
    watched: Sequence[ManagedProcess] = (),
) -> None:
    """Wait until every check returns 200 on its paths and lists its workers.

    A process of checks or watched (those started earlier, e.g. side services) that exits
    while we wait fails at once with the tail of its log, because waiting out the timeout
    would only delay the same error.
    """
    pending = {check.process.name: check for check in checks if check.base_url is not None}
    alive = [*watched, *(check.process for check in checks)]
    start_s = time.monotonic()
    while True:
        for process in alive:
            _raise_if_exited(process)

        for name, check in list(pending.items()):
            if _is_ready(check):
                logger.info("%s is ready at %s after %.1f s", name, check.base_url, time.monotonic() - start_s)
                del pending[name]

        if not pending:
            return
        if time.monotonic() - start_s > timeout_s:
            names = ", ".join(sorted(pending))
            logs = ", ".join(str(check.process.log_path) for check in pending.values())
            raise LaunchError(
                f"{names} not ready after {timeout_s:.0f} s (engine.readiness.timeout_s); "
                f"see {logs}"
            )
        time.sleep(poll_interval_s)


def wait_ready(
    targets: list[tuple[ManagedProcess, str]],
    paths: list[str],
    timeout_s: float,
    poll_interval_s: float,
) -> None:
    """Wait until every (process, base_url) returns 200 on every path."""
    checks = [ReadyCheck(process, base_url, tuple(paths)) for process, base_url in targets]
    wait_until_ready(checks, timeout_s, poll_interval_s)


def _is_ready(check: ReadyCheck) -> bool:
    if not all(probe(check.base_url + path) == 200 for path in check.paths):
        return False
    target = check.worker_list
    if target is None:
        return True
    listed = listed_workers(check.base_url + target.path, target.list_key, target.match)
    return listed is not None and listed >= target.expected


def _raise_if_exited(process: ManagedProcess) -> None:
    code = process.exit_code()
    if code is not None:
        raise LaunchError(
            f"{process.name} exited with code {code} during start-up; last lines of "
            f"{process.log_path}:\n{tail(process.log_path)}"
        )
