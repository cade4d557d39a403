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

# How long a process that its stop signal did not end gets after SIGTERM, before SIGKILL.
SIGTERM_WAIT_S = 5.0


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen = field(repr=False)
    # The signal that requests a stop. srun turns SIGTERM into SIGKILL of its
    # tasks (Slurm's srun/libsrun/srun_job.c) but passes SIGINT on to them when started
    # with --disable-status, so engines started through srun get SIGINT first.
    stop_signal: int = signal.SIGTERM

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


def start_process(
    name: str,
    argv: list[str],
    env: dict[str, str],
    log_path: Path,
    stop_signal: int = signal.SIGTERM,
) -> ManagedProcess:
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
    return ManagedProcess(name=name, argv=argv, log_path=log_path, popen=popen, stop_signal=stop_signal)


def stop_processes(processes: list[ManagedProcess], grace_s: float = 10.0) -> None:
    """Send each process group its stop signal, wait up to grace_s, then end what is left.

    What is left gets SIGTERM first when its stop signal was another one (srun then kills
    its tasks), and SIGKILL after a further SIGTERM_WAIT_S.
    """
    for process in processes:
        if process.exit_code() is None:
            logger.info("stopping %s (pid %d) with %s", process.name, process.pid,
                        signal.Signals(process.stop_signal).name)
            _signal_group(process, process.stop_signal)

    deadline = time.monotonic() + grace_s
    for process in processes:
        remaining_s = max(0.0, deadline - time.monotonic())
        try:
            process.popen.wait(timeout=remaining_s)
        except subprocess.TimeoutExpired:
            _end_process(process, grace_s)
        # The group may hold children that outlived the leader.
        _signal_group(process, signal.SIGKILL)
        logger.info("%s stopped with exit code %s", process.name, process.popen.returncode)


def _end_process(process: ManagedProcess, grace_s: float) -> None:
    if process.stop_signal != signal.SIGTERM:
        logger.warning("%s (pid %d) still runs %.0f s after %s; sending SIGTERM", process.name,
                       process.pid, grace_s, signal.Signals(process.stop_signal).name)
        _signal_group(process, signal.SIGTERM)
        try:
            process.popen.wait(timeout=SIGTERM_WAIT_S)
            return
        except subprocess.TimeoutExpired:
            pass
    logger.warning("%s (pid %d) ignored SIGTERM; sending SIGKILL", process.name, process.pid)
    _signal_group(process, signal.SIGKILL)
    process.popen.wait()


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
