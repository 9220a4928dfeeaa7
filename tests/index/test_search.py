"""Exhaustive search ranks as brute-force `maxsim` does; two-stage with the whole index shortlisted
ranks the same; masks, k and ties behave as documented."""

from __future__ import annotations

import pytest
import torch

from metaembed.index import MultiVectorIndex, synthetic
from metaembed.scoring import maxsim
from metaembed.index.synthetic import row_ids, unit_vectors

N, R_C, R_Q, D = 300, 8, 4, 16
BUDGETS = [(1, 1), (2, 4), (4, 8), (3, 5)]


@pytest.fixture(scope="module")
def data():
    candidates = unit_vectors(N, R_C, D, seed=0)
    mask = torch.rand(N, R_C, generator=torch.Generator().manual_seed(1)) < 0.7
    mask[:, 0] = True
    queries = unit_vectors(5, R_Q, D, seed=2)
    query_mask = torch.ones(5, R_Q, dtype=torch.bool)
    query_mask[1, 2:] = False
    return candidates, mask, queries, query_mask


def brute_force(data, budget, k):
    candidates, mask, queries, query_mask = data
    scores = maxsim(queries, candidates, budget, query_mask, mask)
    top = torch.sort(scores, dim=1, descending=True, stable=True)
    return top.values[:, :k], [[f"doc-{row}" for row in rows[:k].tolist()] for rows in top.indices]


@pytest.mark.parametrize("budget", BUDGETS)
def test_float32_exhaustive_search_is_brute_force_maxsim_in_small_blocks(data, budget) -> None:
    candidates, mask, queries, query_mask = data
    index = MultiVectorIndex.build(candidates, mask, row_ids(N), dtype="float32", first_stage=None)
    scores, ids = index.search(queries, query_mask, budget, k=10, block_size=37)
    expected_scores, expected_ids = brute_force(data, budget, 10)
    assert ids == expected_ids
    torch.testing.assert_close(scores, expected_scores)
    assert scores.dtype == torch.float32 and scores.shape == (5, 10)


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_quantised_indexes_keep_most_of_the_exact_top_10(data, dtype) -> None:
    candidates, mask, queries, query_mask = data
    index = MultiVectorIndex.build(candidates, mask, row_ids(N), dtype=dtype, first_stage=None)
    for budget in BUDGETS:
        _, ids = index.search(queries, query_mask, budget, k=10)
        _, expected = brute_force(data, budget, 10)
        overlap = sum(len(set(a) & set(b)) for a, b in zip(ids, expected)) / 50
        assert overlap >= 0.9, (dtype, budget, overlap)


def test_binary_codes_still_find_the_candidate_a_query_was_drawn_from() -> None:
    # Signs lose the fine order of near neighbours (top-10 overlap with the exact ranking measured
    # ~0.35 here), but a query's own candidate still comes first at a multi-vector budget.
    num = 3000
    topics = synthetic.topics(num, 64, 30, seed=0)
    targets = torch.randint(0, num, (20,), generator=torch.Generator().manual_seed(1))
    candidates = synthetic.vectors_around(topics, 16, seed=2)
    queries = synthetic.vectors_around(topics[targets], 8, seed=3)
    index = MultiVectorIndex.build(candidates, None, row_ids(num), dtype="binary", first_stage=None)
    _, ids = index.search(queries, None, (8, 16), k=10)
    hits = sum(found[0] == f"doc-{int(target)}" for target, found in zip(targets, ids))
    assert hits >= 18


@pytest.mark.parametrize("first_stage", ["hnsw", "flat"])
def test_two_stage_with_every_row_shortlisted_equals_exhaustive(data, first_stage) -> None:
    candidates, mask, queries, query_mask = data
    index = MultiVectorIndex.build(candidates, mask, row_ids(N), dtype="int8", first_stage=first_stage)
    for budget in BUDGETS:
        exhaustive = index.search(queries, query_mask, budget, k=10)
        two_stage = index.search(queries, query_mask, budget, k=10, first_stage_k=N, block_size=50)
        assert two_stage[1] == exhaustive[1]
        torch.testing.assert_close(two_stage[0], exhaustive[0])


def test_masked_candidate_vectors_never_score_and_masked_query_vectors_add_nothing() -> None:
    queries = unit_vectors(1, 2, D, seed=3)
    candidates = unit_vectors(3, 2, D, seed=4)
    candidates[0, 1] = queries[0, 0]  # a perfect match, but masked: must not count
    mask = torch.tensor([[True, False], [True, True], [True, True]])
    index = MultiVectorIndex.build(candidates, mask, ["a", "b", "c"], dtype="float32", first_stage=None)
    query_mask = torch.tensor([[True, False]])
    scores, ids = index.search(queries, query_mask, (2, 2), k=3)
    by_id = dict(zip(ids[0], scores[0].tolist()))
    assert by_id["a"] == pytest.approx(float(queries[0, 0] @ candidates[0, 0]), abs=1e-6)
    # Only the real query vector counts: the same as scoring that vector alone.
    alone, alone_ids = index.search(queries[:, :1], None, (1, 2), k=3)
    assert alone_ids == ids
    torch.testing.assert_close(alone, scores)


def test_k_above_the_live_count_returns_every_candidate_and_ties_follow_row_order() -> None:
    one = unit_vectors(1, 2, D, seed=5)
    candidates = one.repeat(6, 1, 1)  # six identical candidates: every score ties
    index = MultiVectorIndex.build(candidates, None, ["f", "e", "d", "c", "b", "a"], dtype="float32",
                                   first_stage="flat")
    for first_stage_k in (None, 50):
        scores, ids = index.search(one, None, (1, 2), k=50, first_stage_k=first_stage_k, block_size=4)
        assert ids == [["f", "e", "d", "c", "b", "a"]]
        assert scores.shape == (1, 6) and bool((scores == scores[0, 0]).all())


def test_results_are_sorted_best_first(data) -> None:
    candidates, mask, queries, query_mask = data
    index = MultiVectorIndex.build(candidates, mask, row_ids(N), dtype="bfloat16", first_stage=None)
    scores, _ = index.search(queries, query_mask, (4, 8), k=25)
    assert bool((scores[:, :-1] >= scores[:, 1:]).all())
