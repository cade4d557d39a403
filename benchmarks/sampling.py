"""Sample the server's token counter and the CPU time of server and client while a level runs.

Every figure of the benchmark comes from these samples, the same way for every load
generator. The server counts the events (one streamed event per generated token). CPU
time is read from /proc for the client's whole process tree. Rates are taken over a
window of steady load, so a tool's start-up, prompt generation and final report fall
outside it.
"""

import logging
import os
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")

# Names exported by harness/sim/prometheus.py.
_COUNTERS = {
    "sim:generation_tokens_total": "tokens",
    "sim:steps_total": "steps",
    "sim:num_requests_running": "running",
    "sim:schedule_resets_total": "schedule_resets",
}


@dataclass(frozen=True)
class Sample:
    perf_ns: int
    tokens: float
    steps: float
    running: float
    schedule_resets: float
    server_cpu_s: float
    client_cpu_s: float
    # Time that the server's threads were runnable but waited for a CPU.
    server_wait_s: float = 0.0
    # CPU time of the sampling thread so far, which shares the server's CPU.
    sampler_cpu_s: float = 0.0


@dataclass(frozen=True)
class WindowFigures:
    """Rates over the steady part of a level, between two samples."""

    duration_s: float
    events: float
    events_per_s: float
    client_cpu_share: float  # CPU seconds per second, 1.0 is one full core
    client_cpu_us_per_event: float | None
    server_cpu_share: float
    server_cpu_us_per_event: float | None
    # Seconds per second that the server was runnable but another process held its CPU.
    server_wait_share: float
    sampler_cpu_share: float
    mean_running_requests: float
    steps_per_s: float
    schedule_resets: float
    # False when the level was too short for a window that excludes ramp-up and drain.
    steady: bool


def process_cpu_s(pid: int) -> float:
    """Return user + system CPU time of one process and of its reaped children, in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as stat_file:
        stat = stat_file.read()
    # The command name may contain spaces, so fields are counted after its closing ")".
    fields = stat[stat.rindex(b")") + 2 :].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return (utime + stime + cutime + cstime) / CLOCK_TICKS_PER_S


def process_tree(root_pid: int) -> list[int]:
    """Return root_pid and every live descendant, found through /proc/<pid>/task/*/children."""
    pids = [root_pid]
    index = 0
    while index < len(pids):
        pid = pids[index]
        index += 1
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children", "rb") as children_file:
                    pids.extend(int(child) for child in children_file.read().split())
            except OSError:
                # The thread or the process ended while it was read (ENOENT or ESRCH).
                continue
    return pids


def tree_cpu_s(pids: Sequence[int]) -> float:
    """Return the CPU time of the processes pids, in seconds.

    A child that exits and is reaped moves its time into its parent's cutime and cstime,
    which process_cpu_s counts, so the sum does not drop when workers end.
    """
    total_s = 0.0
    for pid in pids:
        try:
            total_s += process_cpu_s(pid)
        except OSError:
            continue
    return total_s


def process_wait_s(pid: int) -> float:
    """Return the time the threads of pid spent runnable but waiting for a CPU, in seconds.

    Reads the second field of /proc/<pid>/task/<tid>/schedstat, in nanoseconds.
    """
    total_ns = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", "rb") as schedstat_file:
                total_ns += int(schedstat_file.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total_ns / 1e9


def scrape_counters(metrics_url: str, timeout_s: float = 2.0) -> dict[str, float]:
    """Read the simulator's counters from its Prometheus text endpoint."""
    with urllib.request.urlopen(metrics_url, timeout=timeout_s) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_and_labels, _, value = line.rpartition(" ")
        name = name_and_labels.split("{", 1)[0]
        if name in _COUNTERS:
            values[_COUNTERS[name]] = float(value)
    return values


class Sampler:
    """Background thread that records a Sample every interval_s until stop() is called.

    The thread runs on the server's CPU, so its own CPU time is recorded too. It lists
    the client's process tree only every TREE_REFRESH_S, because walking the threads of
    a tool with dozens of them costs milliseconds.
    """

    TREE_REFRESH_S = 1.0

    def __init__(self, metrics_url: str, server_pid: int, client_pid: int, interval_s: float) -> None:
        self.metrics_url = metrics_url
        self.server_pid = server_pid
        self.client_pid = client_pid
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self.scrape_errors = 0
        self._client_pids: list[int] = [client_pid]
        self._tree_listed_ns = 0
        self._sampler_cpu_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[Sample]:
        """Stop the thread and return the samples, the last one taken after the client exited."""
        self._stop.set()
        self._thread.join()
        return self.samples

    def _run(self) -> None:
        next_ns = time.perf_counter_ns()
        while True:
            thread_start_s = time.thread_time()
            self._take()
            self._sampler_cpu_s += time.thread_time() - thread_start_s
            if self._stop.is_set():
                return
            next_ns += int(self.interval_s * 1e9)
            self._stop.wait(max(0.0, (next_ns - time.perf_counter_ns()) / 1e9))

    def _last_client_cpu_s(self) -> float:
        return self.samples[-1].client_cpu_s if self.samples else 0.0

    def _take(self) -> None:
        try:
            counters = scrape_counters(self.metrics_url)
        except OSError as error:
            self.scrape_errors += 1
            logger.warning("scrape of %s failed: %s", self.metrics_url, error)
            return

        now_ns = time.perf_counter_ns()
        if now_ns - self._tree_listed_ns >= self.TREE_REFRESH_S * 1e9:
            self._client_pids = process_tree(self.client_pid)
            self._tree_listed_ns = now_ns
        self.samples.append(
            Sample(
                perf_ns=now_ns,
                tokens=counters.get("tokens", 0.0),
                steps=counters.get("steps", 0.0),
                running=counters.get("running", 0.0),
                schedule_resets=counters.get("schedule_resets", 0.0),
                server_cpu_s=tree_cpu_s([self.server_pid]),
                # The client's time vanishes once its process is reaped, and CPU time
                # never decreases, so the last sample keeps the previous value.
                client_cpu_s=max(tree_cpu_s(self._client_pids), self._last_client_cpu_s()),
                server_wait_s=process_wait_s(self.server_pid),
                sampler_cpu_s=self._sampler_cpu_s,
            )
        )


def steady_window(samples: Sequence[Sample], trim_fraction: float = 0.1) -> WindowFigures | None:
    """Compute the rates between the samples where trim_fraction and 1 - trim_fraction of
    the level's tokens had been emitted.

    Trimming by tokens rather than by time drops the tool's start-up (no tokens yet), the
    first wave of requests and the drain at the end, whatever their length. Returns None
    when the server emitted no token.
    """
    if len(samples) < 2:
        return None
    base = samples[0].tokens
    total = samples[-1].tokens - base
    if total <= 0:
        return None

    low = base + trim_fraction * total
    high = base + (1 - trim_fraction) * total
    first = next(i for i, sample in enumerate(samples) if sample.tokens >= low)
    last = max(i for i, sample in enumerate(samples) if sample.tokens <= high)
    steady = last - first >= 2
    if not steady:
        # Fall back to the whole span in which tokens were emitted.
        first = max(0, next(i for i, sample in enumerate(samples) if sample.tokens > base) - 1)
        last = next(i for i, sample in enumerate(samples) if sample.tokens >= base + total)

    start, end = samples[first], samples[last]
    duration_s = (end.perf_ns - start.perf_ns) / 1e9
    if duration_s <= 0:
        return None
    events = end.tokens - start.tokens
    client_cpu_s = end.client_cpu_s - start.client_cpu_s
    server_cpu_s = end.server_cpu_s - start.server_cpu_s
    window = samples[first : last + 1]
    return WindowFigures(
        duration_s=duration_s,
        events=events,
        events_per_s=events / duration_s,
        client_cpu_share=client_cpu_s / duration_s,
        client_cpu_us_per_event=client_cpu_s / events * 1e6 if events else None,
        server_cpu_share=server_cpu_s / duration_s,
        server_cpu_us_per_event=server_cpu_s / events * 1e6 if events else None,
        server_wait_share=max(0.0, end.server_wait_s - start.server_wait_s) / duration_s,
        sampler_cpu_share=(end.sampler_cpu_s - start.sampler_cpu_s) / duration_s,
        mean_running_requests=sum(sample.running for sample in window) / len(window),
        steps_per_s=(end.steps - start.steps) / duration_s,
        schedule_resets=end.schedule_resets - start.schedule_resets,
        steady=steady,
    )
