"""What a scorer that ranks candidates at random achieves: the floor every result is read against."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence


def precision_at_1(candidate_counts: Sequence[int]) -> float:
    """Mean of 1/K: the positive is one of K candidates."""
    return sum(1.0 / k for k in candidate_counts) / len(candidate_counts) if candidate_counts else 0.0


def twin_accuracy(twin_counts: Sequence[int]) -> float:
    """Mean of 1/(1+T) over rows with T >= 1 twins: picking the positive among itself and its twins."""
    counts = [count for count in twin_counts if count > 0]
    return sum(1.0 / (1 + count) for count in counts) / len(counts) if counts else 0.0


def ndcg_at_k(qrels: Iterable[dict], n_corpus: int, k: int = 5) -> float:
    """Expected nDCG@k of a uniformly random ranking, with linear gains as pytrec_eval uses.

    Every rank holds each page with probability 1/N, so its expected gain is the mean gain over
    the corpus; the ideal ranking sorts the gains.
    """
    gains: dict[object, list[float]] = defaultdict(list)
    for rel in qrels:
        if rel["score"] > 0:
            gains[rel["query-id"]].append(float(rel["score"]))
    discount = [1.0 / math.log2(rank + 2) for rank in range(k)]
    values = []
    for scores in gains.values():
        expected = sum(scores) / n_corpus * sum(discount[: min(k, n_corpus)])
        ideal = sum(g * d for g, d in zip(sorted(scores, reverse=True), discount))
        values.append(expected / ideal)
    return sum(values) / len(values) if values else 0.0
