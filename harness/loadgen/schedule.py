"""Open-loop send schedules: seeded inter-arrival times summed into offsets from the start.

Each request's send time is start + its offset, computed once before the level starts,
so a late send never shifts the ones after it (no drift).
"""

from collections.abc import Sequence

import numpy as np

from harness.errors import ConfigError

_NS_PER_S = 1_000_000_000


def arrival_offsets_ns(
    count: int,
    request_rate: float,
    arrival: str,
    burstiness: float,
    seed_key: Sequence[int],
) -> list[int]:
    """Return count send offsets in ns from the start: 0 for the first request, then sums of gaps.

    Gaps have mean 1 / request_rate seconds. "poisson" draws them from an exponential
    distribution. "gamma" draws them from a gamma distribution with shape = burstiness
    and scale = 1 / (request_rate * burstiness), so their variance is
    1 / (request_rate**2 * burstiness): burstiness 1 equals Poisson, below 1 is burstier.
    The same arguments always give the same offsets.
    """
    if count < 0:
        raise ValueError(f"count={count} is invalid; pass 0 or more requests")
    if not request_rate > 0:
        raise ConfigError(f"request_rate={request_rate} is invalid; set a positive number of requests/s")
    if count == 0:
        return []

    rng = np.random.default_rng(list(seed_key))
    if arrival == "poisson":
        gaps_s = rng.exponential(1.0 / request_rate, size=count - 1)
    elif arrival == "gamma":
        if not burstiness > 0:
            raise ConfigError(f"burstiness={burstiness} is invalid; set a positive gamma shape")
        gaps_s = rng.gamma(shape=burstiness, scale=1.0 / (request_rate * burstiness), size=count - 1)
    else:
        raise ConfigError(f"arrival={arrival!r} is not supported; use 'poisson' or 'gamma'")

    # Sum in seconds and round once, so rounding errors do not add up over the schedule.
    offsets_s = np.concatenate(([0.0], np.cumsum(gaps_s)))
    return np.rint(offsets_s * _NS_PER_S).astype(np.int64).tolist()
