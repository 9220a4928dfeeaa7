"""Timing one budget on a built index: exhaustive and two-stage medians, and recall@k."""

from __future__ import annotations

import pytest
import torch

from metaembed.index import MultiVectorIndex, synthetic
from metaembed.serving.latency import recall, threads, time_budget


@pytest.fixture(scope="module")
def clustered():
    """300 clustered candidates (R_c = 8, D = 16) and 6 queries (R_q = 4) near some of them."""
    topics = synthetic.topics(300, 16, 20, seed=0)
    vectors = synthetic.vectors_around(topics, 8, seed=1)
    queries = synthetic.vectors_around(topics[:6], 4, seed=2)
    return vectors, queries, torch.ones(6, 4, dtype=torch.bool)


def test_recall_is_the_share_of_the_exact_top_k_found():
    assert recall([["a", "b"], ["c", "d"]], [["b", "a"], ["c", "x"]]) == pytest.approx(0.75)
    assert recall([[], ["a"]], [["z"], ["a"]]) == 1.0  # a query with no exact result does not count


def test_a_shortlist_of_every_candidate_finds_the_exhaustive_top_k(clustered):
    vectors, queries, mask = clustered
    index = MultiVectorIndex.build(vectors, None, synthetic.row_ids(300), first_stage="flat")
    timed = time_budget(index, queries, mask, (2, 4), k=5, first_stage_k=300, repeats=2)
    assert timed.exhaustive_ms > 0 and timed.two_stage_ms > 0 and timed.recall_at_k == 1.0


def test_a_short_shortlist_can_miss_and_an_exhaustive_index_has_no_two_stage(clustered):
    vectors, queries, mask = clustered
    index = MultiVectorIndex.build(vectors, None, synthetic.row_ids(300), first_stage="flat")
    assert time_budget(index, queries, mask, None, k=10, first_stage_k=10, repeats=1).recall_at_k < 1.0

    exhaustive = MultiVectorIndex.build(vectors, None, synthetic.row_ids(300), first_stage=None)
    timed = time_budget(exhaustive, queries, mask, (1, 1), k=5, first_stage_k=None, repeats=1)
    assert (timed.two_stage_ms, timed.recall_at_k) == (None, None) and timed.exhaustive_ms > 0


def test_threads_are_set_inside_the_block_and_restored_after():
    import faiss

    before = torch.get_num_threads(), faiss.omp_get_max_threads()
    with threads(1):
        assert (torch.get_num_threads(), faiss.omp_get_max_threads()) == (1, 1)
    assert (torch.get_num_threads(), faiss.omp_get_max_threads()) == before
