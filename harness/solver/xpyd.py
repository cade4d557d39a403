"""Integer xPyD deployments (x prefill and y decode servers) near the fractional ratio."""

import math
from dataclasses import dataclass
from typing import Literal

Bottleneck = Literal["prefill", "decode", "balanced"]

# Two pool capacities within this relative difference count as balanced.
BALANCE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class XpydOption:
    """One deployment of x prefill and y decode servers and what it serves.

    output_tps_per_gpu counts output tokens only and divides by every GPU of the
    deployment, prefill and decode alike.
    """

    prefill_servers: int
    decode_servers: int
    gpus: int
    requests_per_s: float
    output_tps_per_gpu: float
    bottleneck: Bottleneck

    @property
    def label(self) -> str:
        return f"{self.prefill_servers}P{self.decode_servers}D"


def prefill_per_decode_ratio(prefill_rps: float, decode_rps: float) -> float:
    """Return how many prefill servers one decode server needs: decode rps / prefill rps."""
    if prefill_rps <= 0 or decode_rps <= 0:
        raise ValueError(
            f"server capacities must be positive, got prefill {prefill_rps} and decode "
            f"{decode_rps} requests/s"
        )
    return decode_rps / prefill_rps


def deployment(
    prefill_servers: int,
    decode_servers: int,
    prefill_rps: float,
    decode_rps: float,
    prefill_gpus: int,
    decode_gpus: int,
    osl: int,
) -> XpydOption:
    """Compute the requests/s, GPUs and output tok/s per GPU of one xPyD deployment.

    The pool with the smaller capacity limits the requests/s and is the bottleneck.
    """
    prefill_pool_rps = prefill_servers * prefill_rps
    decode_pool_rps = decode_servers * decode_rps
    gpus = prefill_servers * prefill_gpus + decode_servers * decode_gpus
    requests_per_s = min(prefill_pool_rps, decode_pool_rps)

    if math.isclose(prefill_pool_rps, decode_pool_rps, rel_tol=BALANCE_TOLERANCE):
        bottleneck: Bottleneck = "balanced"
    elif prefill_pool_rps < decode_pool_rps:
        bottleneck = "prefill"
    else:
        bottleneck = "decode"

    return XpydOption(
        prefill_servers=prefill_servers,
        decode_servers=decode_servers,
        gpus=gpus,
        requests_per_s=requests_per_s,
        output_tps_per_gpu=requests_per_s * osl / gpus,
        bottleneck=bottleneck,
    )


def enumerate_xpyd(
    prefill_rps: float,
    decode_rps: float,
    prefill_gpus: int,
    decode_gpus: int,
    osl: int,
    gpu_budget: int,
    max_options: int,
) -> list[XpydOption]:
    """List the best xPyD deployments within the GPU budget, best first.

    For every y >= 1 that fits, x is the floor and the ceiling of ratio * y (at least 1).
    A multiple kxPkyD of a listed xPyD is left out.
    Options rank by output tok/s per GPU, then by fewer GPUs, then by fewer prefill
    servers. Returns at most max_options, and an empty list when not even 1P1D fits.
    """
    ratio = prefill_per_decode_ratio(prefill_rps, decode_rps)
    options: dict[tuple[int, int], XpydOption] = {}

    decode_servers = 1
    while prefill_gpus + decode_servers * decode_gpus <= gpu_budget:
        exact = ratio * decode_servers
        for prefill_servers in {max(1, math.floor(exact)), max(1, math.ceil(exact))}:
            gpus = prefill_servers * prefill_gpus + decode_servers * decode_gpus
            if gpus <= gpu_budget:
                options[(prefill_servers, decode_servers)] = deployment(
                    prefill_servers, decode_servers, prefill_rps, decode_rps,
                    prefill_gpus, decode_gpus, osl,
                )
        decode_servers += 1

    # kxPkyD has the same tok/s per GPU as xPyD at k times the requests/s, so a multiple
    # would only repeat a row. The renderer prints a line stating that multiples scale.
    reduced = [
        option for (x, y), option in options.items()
        if math.gcd(x, y) == 1 or (x // math.gcd(x, y), y // math.gcd(x, y)) not in options
    ]
    ranked = sorted(reduced, key=_rank_key)
    return ranked[:max_options]


def _rank_key(option: XpydOption) -> tuple[float, int, int]:
    # Rounding to 9 significant digits lets options that are equal but for float
    # rounding (4P1D and 8P2D of one ratio) tie, so that fewer GPUs decide.
    rounded_tps = float(f"{option.output_tps_per_gpu:.9g}")
    return (-rounded_tps, option.gpus, option.prefill_servers)
