"""Bytes per candidate per dtype and budget, and the first stage's estimate against faiss's file."""

from __future__ import annotations

import pytest

from metaembed.costs import budget_cost
from metaembed.index import first_stage_bytes_per_candidate, index_bytes_per_candidate, vector_bytes


def test_float_dtypes_agree_with_the_sweeps_cost_table_and_quantised_ones_add_their_overhead() -> None:
    for dtype in ("float32", "bfloat16"):
        assert index_bytes_per_candidate(dtype, 16, 128) == budget_cost((1, 16), 128, dtype).index_bytes_per_candidate
    assert index_bytes_per_candidate("bfloat16", 64, 128) == 64 * 256
    assert index_bytes_per_candidate("int8", 8, 128) == 8 * (128 + 4)  # codes + a float32 scale
    assert index_bytes_per_candidate("binary", 1, 128) == 16
    assert vector_bytes("binary", 129) == 17  # a partial byte still takes a byte


def test_bad_arguments_name_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="supported: float32, bfloat16, int8, binary"):
        vector_bytes("float16x", 8)
    with pytest.raises(ValueError, match="r_c must be an int >= 1"):
        index_bytes_per_candidate("int8", 0, 8)
    with pytest.raises(ValueError, match="unknown first stage 'ivf'"):
        first_stage_bytes_per_candidate("ivf", 8)


def test_first_stage_estimate_is_within_ten_percent_of_the_saved_faiss_file(tmp_path) -> None:
    from metaembed.index import MultiVectorIndex
    from metaembed.index.synthetic import row_ids, unit_vectors

    num, dim = 3000, 32
    for kind in ("hnsw", "flat"):
        index = MultiVectorIndex.build(unit_vectors(num, 1, dim, seed=0), None, row_ids(num), dtype="binary",
                                       first_stage=kind, hnsw_m=16)
        folder = index.save(tmp_path / kind)
        per_candidate = (folder / "first_stage.faiss").stat().st_size / num
        estimate = first_stage_bytes_per_candidate(kind, dim, hnsw_m=16)
        assert abs(per_candidate - estimate) / estimate < 0.10, (kind, per_candidate, estimate)
    assert first_stage_bytes_per_candidate(None, dim) == 0
