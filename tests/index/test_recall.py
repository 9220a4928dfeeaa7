"""HNSW two-stage search finds the exhaustive top-10 on a clustered 20k set (measured figures are
in docs/index.md; this keeps them from regressing)."""

from __future__ import annotations

import time

import pytest


def recall_at_10(index, queries, budget, first_stage_k) -> float:
    _, exact = index.search(queries, None, budget, k=10)
    _, found = index.search(queries, None, budget, k=10, first_stage_k=first_stage_k)
    return sum(len(set(a) & set(b)) for a, b in zip(exact, found)) / (10 * len(exact))


@pytest.mark.parametrize("budget", [(1, 1), (4, 8), (8, 16)])
def test_hnsw_shortlist_of_256_recalls_the_exhaustive_top_10(clustered, clustered_index, budget) -> None:
    start = time.perf_counter()
    recall = recall_at_10(clustered_index, clustered.queries, budget, 256)
    elapsed = time.perf_counter() - start
    print(f"budget {budget}: recall@10 {recall:.3f} at first_stage_k=256 ({elapsed:.2f} s for both searches)")
    assert recall >= 0.95


def test_the_set_is_hard_enough_that_a_short_shortlist_misses(clustered, clustered_index) -> None:
    # Guards the test above against data on which any first stage would pass.
    assert recall_at_10(clustered_index, clustered.queries, (8, 16), 16) < 0.8
