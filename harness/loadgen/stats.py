"""Percentiles and summary statistics, computed one way for every metric of harness.

Percentiles use linear interpolation between closest ranks, numpy's default method
"linear". For n sorted values and q in [0, 100], the rank is q / 100 * (n - 1), and a
fractional rank interpolates between its two neighbours.
"""

from collections.abc import Sequence

import numpy as np

# Percentiles reported for every latency metric, as the keys p50, p90, p95 and p99.
REPORTED_PERCENTILES = (50, 90, 95, 99)

DESCRIBE_KEYS = ("mean", "std", "min", "max") + tuple(f"p{q}" for q in REPORTED_PERCENTILES)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Return the q-th percentile (q in [0, 100]) of values, or None when values is empty.

    Linear interpolation: with n sorted values v and rank r = q / 100 * (n - 1), the
    result is v[floor(r)] + (v[ceil(r)] - v[floor(r)]) * (r - floor(r)).
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q={q!r} is outside [0, 100]; pass a percent such as 99")
    if len(values) == 0:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q, method="linear"))


def describe(values: Sequence[float]) -> dict[str, float | None]:
    """Summarize values as mean, std, min, max, p50, p90, p95 and p99.

    std is the population standard deviation (ddof=0). Every value is None when values
    is empty, so that a metric without samples reads as null rather than 0.
    """
    if len(values) == 0:
        return {key: None for key in DESCRIBE_KEYS}

    array = np.asarray(values, dtype=np.float64)
    summary: dict[str, float | None] = {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=0)),
        "min": float(array.min()),
        "max": float(array.max()),
    }
    for q in REPORTED_PERCENTILES:
        summary[f"p{q}"] = percentile(array, q)
    return summary
