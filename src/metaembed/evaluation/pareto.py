"""The Pareto frontier of budgets: no other budget is at least as good and at most as costly."""

from __future__ import annotations

from collections.abc import Sequence


def pareto_mask(quality: Sequence[float | None], costs: Sequence[Sequence[float]]) -> list[bool]:
    """True for each point that no other point dominates (higher quality is better, lower costs are).

    A point is dominated by one with quality >= and every cost <=, better in at least one of them.
    Points without a quality (None) are never on the frontier and dominate nothing. Two identical
    points both stay: neither is better than the other.
    """
    if len(quality) != len(costs):
        raise ValueError(f"{len(quality)} qualities but {len(costs)} cost rows")
    points = [(q, tuple(c)) for q, c in zip(quality, costs)]
    return [q is not None and not any(_dominates(other, (q, c)) for other in points if other[0] is not None)
            for q, c in points]


def _dominates(a: tuple[float, tuple], b: tuple[float, tuple]) -> bool:
    (qa, ca), (qb, cb) = a, b
    no_worse = qa >= qb and all(x <= y for x, y in zip(ca, cb))
    better = qa > qb or any(x < y for x, y in zip(ca, cb))
    return no_worse and better
