"""Pareto frontier of (tok/s per user, tok/s per GPU) points, where more of both is better."""

from collections.abc import Sequence


def pareto_frontier(xs: Sequence[float], ys: Sequence[float]) -> list[int]:
    """Return the indices of the points that no other point dominates, by ascending x.

    A point dominates another when it is at least as high on both axes and higher on
    one. Of identical points only the first is kept. Callers drop NaN before calling.
    """
    if len(xs) != len(ys):
        raise ValueError(f"xs has {len(xs)} values and ys {len(ys)}; pass one y per x")

    # Walk from the highest x down: a point is on the frontier when its y beats every
    # point of higher x seen so far. Equal x goes highest y first, so the lower is dominated.
    order = sorted(range(len(xs)), key=lambda index: (-xs[index], -ys[index], index))
    frontier = []
    best_y = float("-inf")
    for index in order:
        if ys[index] > best_y:
            frontier.append(index)
            best_y = ys[index]
    return frontier[::-1]
