"""Tests of harness.loadgen.stats: linear-interpolation percentiles and describe()."""

import math

import pytest

from harness.loadgen.stats import describe, percentile


def test_percentile_interpolates_between_ranks():
    # rank = 0.5 * (4 - 1) = 1.5, so 2 + 0.5 * (3 - 2) = 2.5
    assert percentile([4, 1, 3, 2], 50) == 2.5


def test_percentile_p90_of_five():
    # rank = 0.9 * (5 - 1) = 3.6, so 40 + 0.6 * (50 - 40) = 46
    assert percentile([10, 20, 30, 40, 50], 90) == pytest.approx(46.0)


def test_percentile_p99_of_two():
    # rank = 0.99 * (2 - 1) = 0.99, so 0 + 0.99 * 100 = 99
    assert percentile([0, 100], 99) == pytest.approx(99.0)


def test_percentile_bounds_are_min_and_max():
    assert percentile([3, 9, 5], 0) == 3.0
    assert percentile([3, 9, 5], 100) == 9.0


def test_percentile_empty_is_none():
    assert percentile([], 50) is None


def test_percentile_rejects_q_outside_range():
    with pytest.raises(ValueError, match="q=101"):
        percentile([1, 2], 101)


def test_describe_four_values():
    stats = describe([1, 2, 3, 4])

    assert stats["mean"] == 2.5
    # population std: sqrt((1.5^2 + 0.5^2 + 0.5^2 + 1.5^2) / 4) = sqrt(5 / 4)
    assert stats["std"] == pytest.approx(math.sqrt(1.25))
    assert stats["min"] == 1.0
    assert stats["max"] == 4.0
    assert stats["p50"] == 2.5
    # rank 0.9 * 3 = 2.7 -> 3 + 0.7 * 1 = 3.7
    assert stats["p90"] == pytest.approx(3.7)
    # rank 0.95 * 3 = 2.85 -> 3.85
    assert stats["p95"] == pytest.approx(3.85)
    # rank 0.99 * 3 = 2.97 -> 3.97
    assert stats["p99"] == pytest.approx(3.97)


def test_describe_single_value():
    stats = describe([7])

    assert stats["std"] == 0.0
    assert stats["p99"] == 7.0


def test_describe_empty_is_all_none():
    stats = describe([])

    assert list(stats) == ["mean", "std", "min", "max", "p50", "p90", "p95", "p99"]
    assert all(value is None for value in stats.values())
