from __future__ import annotations

import pytest
import torch

from metaembed.evaluation import latency
from metaembed.evaluation.params import LatencyParams


def test_latency_is_measured_per_index_size_and_per_query():
    params = LatencyParams(candidates=[50, 400], query_batch=2, dtype="float32", repeats=3, warmup=0,
                           quiet_wait_s=0, flush_mib=0)
    results = latency.measure(2, 4, 16, params)
    assert [r.num_candidates for r in results] == [50, 400]
    for result in results:
        assert len(result.times_s) == 3 and all(t > 0 for t in result.times_s)
        # A median of the repeats (of the quiet ones when some were contended), over 2 queries per call.
        assert min(result.times_s) <= result.ms_per_query * 2 / 1e3 <= max(result.times_s)


def test_the_synthetic_index_has_the_budgets_shape_and_dtype():
    index = latency.synthetic_index(10, 4, 8, torch.bfloat16, torch.Generator().manual_seed(0))
    assert index.shape == (10, 4, 8) and index.dtype == torch.bfloat16 and torch.isfinite(index.float()).all()
    assert index.float().std() > 0


def test_an_index_too_large_for_memory_is_refused_with_the_keys_to_change():
    params = LatencyParams(max_index_gib=1.0)
    with pytest.raises(ValueError, match=r"100000, 64, 3584\].*sweep.latency.max_index_gib"):
        latency.check_index_size(100_000, 64, 3584, params)
    latency.check_index_size(100_000, 64, 128, LatencyParams(max_index_gib=2.0))  # 1.53 GiB in bfloat16
