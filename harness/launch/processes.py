"""Start worker processes in their own process groups and stop them reliably."""

import logging
import os
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import LaunchError

logger = logging.getLogger(__name__)


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen = field(repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exit_code(self) -> int | None:
        return self.popen.poll()


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free now; another process may take it before we bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def start_process(name: str, argv: list[str], env: dict[str, str], log_path: Path) -> ManagedProcess:
    """Start argv with stdout and stderr in log_path, in a new session (process group)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    logger.info("starting %s, log %s", name, log_path)
    logger.debug("argv of %s: %s", name, shlex.join(argv))
    with open(log_path, "ab") as log_file:
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                start_new_session=True,
            )
        except OSError as error:
            raise LaunchError(f"cannot start {name} ({argv[0]}): {error}") from None
    return ManagedProcess(name=name, argv=argv, log_path=log_path, popen=popen)


def stop_processes(processes: list[ManagedProcess], grace_s: float = 10.0) -> None:
    """SIGTERM every process group, wait up to grace_s, then SIGKILL what is left."""
    for process in processes:
        if process.exit_code() is None:
            logger.info("stopping %s (pid %d)", process.name, process.pid)
            _signal_group(process, signal.SIGTERM)

    deadline = time.monotonic() + grace_s
    for process in processes:
        remaining_s = max(0.0, deadline - time.monotonic())
        try:
            process.popen.wait(timeout=remaining_s)
        except subprocess.TimeoutExpired:
            logger.warning("%s (pid %d) ignored SIGTERM for %.0f s; sending SIGKILL",
                           process.name, process.pid, grace_s)
            _signal_group(process, signal.SIGKILL)
            process.popen.wait()
        # The group may hold children that outlived the leader.
        _signal_group(process, signal.SIGKILL)
        logger.info("%s stopped with exit code %s", process.name, process.popen.returncode)


def _signal_group(process: ManagedProcess, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError as error:
        logger.error("cannot signal process group of %s (pid %d): %s", process.name, process.pid, error)


def tail(path: Path, lines: int = 30) -> str:
    """Return the last lines of a log file, or a note that it is missing."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError as error:
        return f"(log {path} unreadable: {error})"
    return "\n".join(text.splitlines()[-lines:])
