"""The multi-vector first stage (first_stage_vectors > 1): each query vector shortlists its own
nearest candidates, which finds the top-k of a large budget where the first vector alone cannot."""

from __future__ import annotations

import pytest
import torch

from metaembed.index import MultiVectorIndex
from metaembed.index.synthetic import row_ids, unit_vectors

N, R, D = 400, 8, 16


def planted() -> tuple[torch.Tensor, torch.Tensor]:
    """Random candidates, and per query one planted candidate that matches every query vector with
    its vectors 1..7 but whose first vector is noise: the full budget ranks it first, the first
    vector alone does not see it."""
    candidates = unit_vectors(N, R, D, seed=0)
    queries = unit_vectors(4, R, D, seed=1)
    for b in range(len(queries)):
        candidates[10 * b, 1:] = queries[b, 1:]
    return candidates, queries


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_every_vector_in_the_first_stage_finds_what_the_first_vector_misses(kind) -> None:
    candidates, queries = planted()
    one = MultiVectorIndex.build(candidates, None, row_ids(N), first_stage=kind)
    every = MultiVectorIndex.build(candidates, None, row_ids(N), first_stage=kind, first_stage_vectors=R)
    _, exact = every.search(queries, None, (R, R), k=1)
    assert exact == [[f"doc-{10 * b}"] for b in range(4)]
    assert every.search(queries, None, (R, R), k=1, first_stage_k=16)[1] == exact
    assert one.search(queries, None, (R, R), k=1, first_stage_k=16)[1] != exact


def test_a_budget_shortlists_by_its_own_vectors_only_and_skips_padding_and_removed_rows() -> None:
    candidates, queries = planted()
    mask = torch.ones(N, R, dtype=torch.bool)
    mask[20, 4:] = False  # row 20 (query 2's planted row) keeps its vectors 1..3 only
    index = MultiVectorIndex.build(candidates, mask, row_ids(N), first_stage="flat", first_stage_vectors=R)
    # At r_c = 1 only first vectors count: the planted rows are no better than noise there.
    _, exact = index.search(queries, None, (4, 1), k=3)
    assert index.search(queries, None, (4, 1), k=3, first_stage_k=N)[1] == exact
    index.remove(["doc-0"])
    _, ids = index.search(queries, None, (R, R), k=5, first_stage_k=40)
    assert all("doc-0" not in found for found in ids)
    assert ids[2][0] == "doc-20"


def test_the_shortlist_stays_near_first_stage_k_and_the_index_round_trips(tmp_path) -> None:
    from metaembed.index import shortlist as module

    candidates, queries = planted()
    index = MultiVectorIndex.build(candidates, None, row_ids(N), first_stage="hnsw", first_stage_vectors=4)
    lists = module.shortlists(index._ann, index.first_stage, index._store, index._removed, queries,
                              torch.ones(4, R, dtype=torch.bool), (R, R), 32, None)
    # 8 query vectors x ceil(32 / 8) rows each, minus the rows two of them share.
    assert all(8 <= len(rows) <= 32 for rows in lists)
    loaded = MultiVectorIndex.load(index.save(tmp_path / "index"))
    assert loaded.first_stage.vectors == 4 and loaded._ann.ntotal == 4 * N
    assert loaded.search(queries, None, (R, R), k=5, first_stage_k=32)[1] == index.search(
        queries, None, (R, R), k=5, first_stage_k=32)[1]


def test_more_first_stage_vectors_than_the_candidates_hold_are_refused() -> None:
    with pytest.raises(ValueError, match="first_stage_vectors=9 exceeds the candidates' R_c=8"):
        MultiVectorIndex.build(unit_vectors(4, R, D, seed=0), None, row_ids(4), first_stage_vectors=9)


def test_a_small_budget_on_a_many_vector_hnsw_still_finds_its_top_k() -> None:
    from metaembed.serving.latency import recall

    # Only 1 entry in 16 may be returned at r_c = 1: the beam is widened to make up for it.
    candidates, queries = unit_vectors(2000, 16, D, seed=6), unit_vectors(20, 4, D, seed=7)
    index = MultiVectorIndex.build(candidates, None, row_ids(2000), first_stage="hnsw", first_stage_vectors=16,
                                   ef_search=16)
    _, exact = index.search(queries, None, (1, 1), k=10)
    assert recall(exact, index.search(queries, None, (1, 1), k=10, first_stage_k=16)[1]) >= 0.95


def test_a_mean_pooled_first_stage_finds_a_candidate_whose_first_vector_is_noise() -> None:
    # Every vector of the target but the first is its query's topic: the mean still points there.
    topics = unit_vectors(4, 1, D, seed=8)
    candidates = unit_vectors(N, R, D, seed=9)
    candidates[: 4, 1:] = topics
    queries = topics.expand(4, 3, D).contiguous()
    one = MultiVectorIndex.build(candidates, None, row_ids(N), first_stage="flat")
    mean = MultiVectorIndex.build(candidates, None, row_ids(N), first_stage="flat", first_stage_pool="mean")
    assert mean.first_stage.pool == "mean" and mean._ann.ntotal == N
    wanted = [[f"doc-{b}"] for b in range(4)]
    assert mean.search(queries, None, (3, R), k=1, first_stage_k=10)[1] == wanted
    assert one.search(queries, None, (3, R), k=1, first_stage_k=10)[1] != wanted
    with pytest.raises(ValueError, match="mean-pooled first stage holds one vector per candidate"):
        MultiVectorIndex.build(candidates, None, row_ids(N), first_stage="flat", first_stage_pool="mean",
                               first_stage_vectors=2)
