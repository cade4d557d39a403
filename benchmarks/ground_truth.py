"""Compare what a load generator observed with the simulator's token log.

The simulator (`harness sim --token-log FILE`) appends one JSON line per finished
request: its response id, the time.perf_counter_ns() of every emitted token and the
time.time_ns() of the first one. A load generator on the same host stamps token
arrivals with its own clock. On Linux perf_counter_ns reads CLOCK_MONOTONIC, which all
processes share, so harness records compare directly. AIPerf and guidellm record wall
time (CLOCK_REALTIME), so their arrivals are compared with emission times shifted onto
the wall clock through the first token's wall stamp.

Errors are arrival minus emission. TTFT error is that difference for the first token,
which is the delay the client adds to TTFT when its send stamp is exact. ITL error is,
per token after the first, the client's gap minus the true gap between emissions.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

Clock = Literal["perf", "wall"]


@dataclass(frozen=True)
class TruthEntry:
    """One line of the simulator's token log."""

    response_id: str
    emit_perf_ns: tuple[int, ...]
    emit_wall_ns_first: int

    def emit_ns(self, clock: Clock) -> np.ndarray:
        """Return the emission time of every token on the given clock, as int64 ns."""
        perf = np.asarray(self.emit_perf_ns, dtype=np.int64)
        if clock == "perf":
            return perf
        return perf - perf[0] + self.emit_wall_ns_first


@dataclass(frozen=True)
class ObservedRequest:
    """One successful request as a load generator recorded it.

    token_arrival_ns lists the arrival of every token, an event's stamp repeated for each
    token it carried. It is None when the tool stores only the first token's arrival.
    """

    response_id: str | None
    send_ns: int
    first_token_ns: int
    token_arrival_ns: tuple[int, ...] | None
    clock: Clock


@dataclass
class AccuracyFigures:
    """Error percentiles of one level against the token log, in milliseconds."""

    matched_requests: int
    # "response id" when the tool recorded the server's id, else "send order".
    match_method: str
    unmatched_requests: int
    ttft_error_ms: dict[str, float | int | None] = field(default_factory=dict)
    itl_error_ms: dict[str, float | int | None] = field(default_factory=dict)
    # Tokens whose recorded arrival precedes their emission: a wrong match or clock.
    arrivals_before_emission: int = 0


def read_token_log(path: Path, start_offset_bytes: int = 0) -> tuple[list[TruthEntry], int]:
    """Read the entries that start at start_offset_bytes and return them with the end offset.

    Only complete lines are read, so a line that the server is writing stays for the
    next call.
    """
    entries: list[TruthEntry] = []
    with open(path, "rb") as log_file:
        log_file.seek(start_offset_bytes)
        data = log_file.read()
    end = data.rfind(b"\n") + 1
    for line in data[:end].splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        entries.append(
            TruthEntry(
                response_id=row["request_id"],
                emit_perf_ns=tuple(row["emit_perf_ns"]),
                emit_wall_ns_first=row["emit_wall_ns_first"],
            )
        )
    return entries, start_offset_bytes + end


def match_requests(
    observed: Sequence[ObservedRequest], truth: Sequence[TruthEntry]
) -> tuple[list[tuple[ObservedRequest, TruthEntry]], str]:
    """Pair observed requests with token-log entries and name the method used.

    With response ids the pairing is exact. Without them, requests sorted by send time
    are paired with entries sorted by first emission, because the simulator admits
    requests first come, first served. Two requests sent within one engine step may
    swap places, but then they share every emission time when their output lengths are
    equal, so the errors do not change.
    """
    if observed and all(request.response_id is not None for request in observed):
        by_id = {entry.response_id: entry for entry in truth}
        pairs = [(request, by_id[request.response_id]) for request in observed if request.response_id in by_id]
        return pairs, "response id"

    by_send = sorted(observed, key=lambda request: request.send_ns)
    by_emission = sorted(truth, key=lambda entry: entry.emit_perf_ns[0])
    return list(zip(by_send, by_emission)), "send order"


def measure_accuracy(
    observed: Sequence[ObservedRequest], truth: Sequence[TruthEntry], skip_first: int = 0
) -> AccuracyFigures:
    """Match observed requests to the token log and summarize the TTFT and ITL errors.

    The skip_first requests sent first are matched but left out of the statistics, so
    that connection set-up in the first wave of a closed loop does not count.
    """
    pairs, method = match_requests(observed, truth)
    pairs.sort(key=lambda pair: pair[0].send_ns)
    counted = pairs[skip_first:]

    ttft_errors_ns: list[int] = []
    itl_errors_ns: list[np.ndarray] = []
    arrivals_before_emission = 0
    for request, entry in counted:
        emit_ns = entry.emit_ns(request.clock)
        ttft_errors_ns.append(request.first_token_ns - int(emit_ns[0]))
        if request.token_arrival_ns is None:
            arrivals_before_emission += int(request.first_token_ns < emit_ns[0])
            continue

        arrival_ns = np.asarray(request.token_arrival_ns, dtype=np.int64)
        tokens = min(len(arrival_ns), len(emit_ns))
        arrival_ns, emit_ns = arrival_ns[:tokens], emit_ns[:tokens]
        arrivals_before_emission += int(np.count_nonzero(arrival_ns < emit_ns))
        itl_errors_ns.append(np.diff(arrival_ns) - np.diff(emit_ns))

    itl_all_ns = np.concatenate(itl_errors_ns) if itl_errors_ns else None
    return AccuracyFigures(
        matched_requests=len(pairs),
        match_method=method,
        unmatched_requests=len(observed) - len(pairs),
        ttft_error_ms=summarize_errors_ms(np.asarray(ttft_errors_ns, dtype=np.int64)),
        itl_error_ms=summarize_errors_ms(itl_all_ns),
        arrivals_before_emission=arrivals_before_emission,
    )


def summarize_errors_ms(errors_ns: np.ndarray | None) -> dict[str, float | int | None]:
    """Summarize signed errors as the mean and the p50 and p99 of their absolute values, in ms.

    Percentiles interpolate linearly between closest ranks, as everywhere in harness.
    Every value is None when there are no samples (a tool that does not record them).
    """
    keys = ("mean", "abs_p50", "abs_p99", "abs_max", "samples")
    if errors_ns is None or len(errors_ns) == 0:
        return {key: None for key in keys}

    errors_ms = errors_ns.astype(np.float64) / 1e6
    absolute_ms = np.abs(errors_ms)
    return {
        "mean": float(errors_ms.mean()),
        "abs_p50": float(np.percentile(absolute_ms, 50, method="linear")),
        "abs_p99": float(np.percentile(absolute_ms, 99, method="linear")),
        "abs_max": float(absolute_ms.max()),
        "samples": int(len(errors_ms)),
    }
