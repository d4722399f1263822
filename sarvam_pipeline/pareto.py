"""Pareto fronts of sweep results: the jobs that no other job beats on both of two figures."""

from __future__ import annotations

from typing import Sequence


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Return True when ``a`` is no worse than ``b`` on both figures and better on one (lower is better)."""
    return a[0] <= b[0] and a[1] <= b[1] and (a[0] < b[0] or a[1] < b[1])


def pareto_front(points: Sequence[tuple[float, float] | None]) -> list[int]:
    """Return the indices of the points that no other point dominates, ordered by the first figure.

    Both figures are minimized, so pass an accuracy as a drop (``1 - cosine``). A ``None`` point (a figure
    that was not obtained) is never on the front and never dominates another. Equal points are all kept,
    because neither beats the other.
    """
    indices = [i for i, point in enumerate(points) if point is not None]
    front = []
    for i in indices:
        if not any(dominates(points[j], points[i]) for j in indices if j != i):
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], points[i][1], i))
