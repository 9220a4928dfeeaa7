"""Bad inputs fail early with a message that names the problem and what is allowed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metaembed.index import MultiVectorIndex
from metaembed.index.synthetic import row_ids, unit_vectors

N, R_C, D = 10, 4, 8


def build(**overrides) -> MultiVectorIndex:
    arguments = {"embeddings": unit_vectors(N, R_C, D, seed=0), "mask": None, "ids": row_ids(N),
                 "dtype": "float32", "first_stage": None}
    return MultiVectorIndex.build(**{**arguments, **overrides})


def test_numpy_inputs_are_accepted_like_tensors() -> None:
    vectors = unit_vectors(N, R_C, D, seed=0)
    from_numpy = build(embeddings=vectors.numpy(), mask=np.ones((N, R_C), dtype=bool))
    queries = unit_vectors(2, 2, D, seed=1)
    assert from_numpy.search(queries.numpy(), None, (2, 3))[1] == build().search(queries, None, (2, 3))[1]


@pytest.mark.parametrize("overrides,error,message", [
    ({"mask": torch.ones(N, R_C + 1, dtype=torch.bool)}, ValueError,
     r"mask has shape \(10, 5\) but the vectors need \[n, R_c\] = \(10, 4\)"),
    ({"mask": torch.ones(N, R_C)}, ValueError, "mask must be a bool tensor or array"),
    ({"ids": [*row_ids(N - 1), 7]}, TypeError, r"ids\[9\] is int 7; ids must be str"),
    ({"ids": "doc"}, TypeError, "ids must be a list of str, got str"),
    ({"ids": row_ids(N - 1)}, ValueError, "got 9 ids for 10 embeddings"),
    ({"ids": [*row_ids(N - 2), "doc-3", "doc-5"]}, ValueError, r"duplicate id 'doc-3' \(ids\[8\]\)"),
    ({"dtype": "float16"}, ValueError, "unknown index dtype 'float16'; supported: float32, bfloat16, int8, binary"),
    ({"first_stage": "ivf"}, ValueError, "unknown first_stage 'ivf'; use 'hnsw', 'flat' or None"),
    ({"first_stage": "hnsw", "hnsw_m": 0}, ValueError, "hnsw_m must be an int >= 1"),
    ({"meta": {"model_version": 3}}, ValueError, "meta must be a dict of str to str"),
    ({"embeddings": torch.ones(N, R_C, D, dtype=torch.int64)}, ValueError, "must hold floating-point vectors"),
    ({"embeddings": unit_vectors(N, D, seed=0)}, ValueError, r"3-D float tensor or array \[N, R_c, D\]"),
])
def test_build_refuses(overrides, error, message) -> None:
    with pytest.raises(error, match=message):
        build(**overrides)


def test_build_names_the_item_with_nan_or_a_masked_first_vector() -> None:
    vectors = unit_vectors(N, R_C, D, seed=0)
    vectors[6, 2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"'doc-6' \(row 6\) holds NaN or inf"):
        build(embeddings=vectors)
    mask = torch.ones(N, R_C, dtype=torch.bool)
    mask[4, 0] = False
    with pytest.raises(ValueError, match=r"first vector of 'doc-4' \(row 4\) is masked; real vectors must come first"):
        build(mask=mask)


@pytest.mark.parametrize("budget", [(0, 1), (3, 1), (1, 5), (1.0, 2), 2])
def test_a_budget_outside_the_queries_and_the_index_names_both_ranges(budget) -> None:
    queries = unit_vectors(2, 2, D, seed=1)
    with pytest.raises(ValueError, match=r"r_q in 1\.\.2 \(the queries' R_q\) and r_c in 1\.\.4 \(the index's R_c\)"):
        build().search(queries, None, budget)


def test_search_refuses_bad_queries_and_settings() -> None:
    index = build()
    queries = unit_vectors(2, 2, D, seed=1)
    with pytest.raises(ValueError, match="queries have D=9 but the index holds D=8"):
        index.search(unit_vectors(2, 2, D + 1, seed=1), None, (1, 1))
    with pytest.raises(ValueError, match=r"query_mask has shape \(2, 3\) but the vectors need \[B, R_q\] = \(2, 2\)"):
        index.search(queries, torch.ones(2, 3, dtype=torch.bool), (1, 1))
    with pytest.raises(ValueError, match="query 1 has no real vector among its first r_q=1"):
        index.search(queries, torch.tensor([[True, True], [False, True]]), (1, 1))
    with pytest.raises(ValueError, match="k must be an int >= 1, got 0"):
        index.search(queries, None, (1, 1), k=0)
    with pytest.raises(ValueError, match="built with first_stage=None: search with first_stage_k=None"):
        index.search(queries, None, (1, 1), first_stage_k=5)
    with pytest.raises(ValueError, match="first_stage_k=3 is below k=5"):
        build(first_stage="flat").search(queries, None, (1, 1), k=5, first_stage_k=3)
