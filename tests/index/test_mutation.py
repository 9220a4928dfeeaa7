"""add and remove without a rebuild: removed rows never come back, added rows are found."""

from __future__ import annotations

import pytest
import torch

from metaembed.index import MultiVectorIndex
from metaembed.index.synthetic import row_ids, unit_vectors

N, R_C, D = 120, 4, 16


@pytest.fixture(params=["hnsw", "flat", None])
def index(request) -> MultiVectorIndex:
    return MultiVectorIndex.build(unit_vectors(N, R_C, D, seed=0), None, row_ids(N), dtype="bfloat16",
                                  first_stage=request.param)


def search_modes(index: MultiVectorIndex) -> list[int | None]:
    return [None] if index.first_stage is None else [None, N + 10]


def test_removed_rows_are_never_returned_and_len_counts_live_rows(index) -> None:
    queries = unit_vectors(3, 2, D, seed=1)
    _, before = index.search(queries, None, (2, 4), k=5)
    gone = sorted({item for found in before for item in found[:3]})
    index.remove(gone)
    assert len(index) == N - len(gone) and all(item not in index for item in gone)
    for first_stage_k in search_modes(index):
        _, after = index.search(queries, None, (2, 4), k=N, first_stage_k=first_stage_k)
        assert all(not set(found) & set(gone) for found in after)
        assert all(len(found) == N - len(gone) for found in after)


def test_added_rows_are_found_by_both_search_modes(index) -> None:
    queries = unit_vectors(2, 2, D, seed=2)
    # Each new candidate is its query's vectors twice over: the best possible match at (2, 4).
    added = torch.cat([queries, queries], dim=1)
    index.add(added, None, ["new-0", "new-1"])
    assert len(index) == N + 2 and index.dims == (N + 2, R_C, D)
    for first_stage_k in search_modes(index):
        _, ids = index.search(queries, None, (2, 4), k=3, first_stage_k=first_stage_k)
        assert [found[0] for found in ids] == ["new-0", "new-1"]


def test_an_id_can_come_back_after_removal_and_the_old_row_stays_dead(index) -> None:
    query = unit_vectors(1, 1, D, seed=3)
    index.remove(["doc-0"])
    index.add(query.expand(1, R_C, D), None, ["doc-0"])
    _, ids = index.search(query, None, (1, 4), k=N)
    assert ids[0].count("doc-0") == 1 and ids[0][0] == "doc-0"


def test_unknown_or_repeated_ids_are_refused_and_change_nothing(index) -> None:
    with pytest.raises(ValueError, match="remove: id 'nope' is not in the index .* nothing was removed"):
        index.remove(["doc-1", "nope"])
    with pytest.raises(ValueError, match="'doc-2' is listed twice"):
        index.remove(["doc-2", "doc-2"])
    assert len(index) == N and "doc-1" in index and "doc-2" in index
    with pytest.raises(ValueError, match=r"id 'doc-4' \(ids\[1\]\) is already in the index"):
        index.add(unit_vectors(2, R_C, D, seed=4), None, ["fresh", "doc-4"])
    assert len(index) == N and "fresh" not in index and index.dims[0] == N


def test_add_refuses_vectors_of_another_shape(index) -> None:
    with pytest.raises(ValueError, match=r"this index stores \[n, R_c=4, D=16\]"):
        index.add(unit_vectors(1, R_C, D + 1, seed=5), None, ["x"])


def test_adds_past_the_segment_size_start_new_segments_and_search_as_one_build(monkeypatch) -> None:
    from metaembed.index import store

    vectors, queries = unit_vectors(N, R_C, D, seed=4), unit_vectors(3, 2, D, seed=5)
    whole = MultiVectorIndex.build(vectors, None, row_ids(N), dtype="int8", first_stage="flat")
    # Room for 25 rows per segment: adding 10 rows at a time merges twice, then starts anew.
    monkeypatch.setattr(store, "SEGMENT_BYTES", 25 * R_C * D)
    grown = MultiVectorIndex.build(vectors[:10], None, row_ids(10), dtype="int8", first_stage="flat")
    for start in range(10, N, 10):
        grown.add(vectors[start:start + 10], None, row_ids(10, start))
    assert [s.stop - s.start for s in grown._store.segments] == [20] * 6
    for first_stage_k in (None, 40):
        scores, ids = grown.search(queries, None, (2, 4), k=20, first_stage_k=first_stage_k)
        expected_scores, expected_ids = whole.search(queries, None, (2, 4), k=20, first_stage_k=first_stage_k)
        # The same rows in the same order; scores up to float rounding: the re-ranked candidates are
        # scored in batches of another shape, which some CPUs (Intel Xeon, session 13) sum in another order.
        assert ids == expected_ids
        torch.testing.assert_close(scores, expected_scores, rtol=0, atol=1e-6)
