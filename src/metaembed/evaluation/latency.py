"""Scoring latency per query at a budget, measured with `metaembed.scoring.maxsim` on this machine.

The index is synthetic: random vectors of the shape a deployment serving that budget stores,
one contiguous `[N, r_c, D]` tensor per budget (see docs/benchmarks.md for why the layout
matters). Timing uses `metaembed.timing`'s loop (shared with `metaembed bench scoring`): untimed warm-up runs, a cache flush before
every repeat, and the other processes' CPU use recorded per repeat; the median leaves out
repeats during which other processes were busy, unless all of them were.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metaembed.costs import bytes_per_element
from metaembed.evaluation.params import LatencyParams

GIB = 2**30


@dataclass(frozen=True)
class Latency:
    num_candidates: int
    ms_per_query: float
    times_s: list[float]
    contended_repeats: int


def check_index_size(num_candidates: int, r_c: int, dim: int, params: LatencyParams) -> None:
    size = num_candidates * r_c * dim * bytes_per_element(params.dtype)
    if size > params.max_index_gib * GIB:
        raise ValueError(f"sweep.latency: a synthetic [{num_candidates}, {r_c}, {dim}] {params.dtype} index needs "
                         f"{size / GIB:.1f} GiB, above sweep.latency.max_index_gib ({params.max_index_gib}); "
                         "lower sweep.latency.candidates or raise the limit")


def synthetic_index(num_candidates: int, vectors: int, dim: int, dtype: torch.dtype,
                    generator: torch.Generator) -> torch.Tensor:
    """Random finite vectors; filled in slabs so the peak stays near the index's own size."""
    out = torch.empty(num_candidates, vectors, dim, dtype=dtype)
    slab = max(1, 2**22 // max(1, vectors * dim))
    for start in range(0, num_candidates, slab):
        out[start:start + slab].uniform_(-1.0, 1.0, generator=generator).mul_(dim ** -0.5)
    return out


def measure(r_q: int, r_c: int, dim: int, params: LatencyParams, gate=None) -> list[Latency]:
    """Median ms per query of scoring `query_batch` queries against each index size."""
    from metaembed.timing import contended, quiet_median, time_maxsim

    dtype = getattr(torch, params.dtype)
    generator = torch.Generator().manual_seed(params.seed)
    out = []
    for n in params.candidates:
        check_index_size(n, r_c, dim, params)
        index = synthetic_index(n, r_c, dim, dtype, generator)
        queries = synthetic_index(params.query_batch, r_q, dim, dtype, generator)
        times, others = time_maxsim(queries, index, (r_q, r_c), warmup=params.warmup, repeats=params.repeats,
                                    flush_mib=params.flush_mib, gate=gate)
        del index
        out.append(Latency(n, quiet_median(times, others) * 1e3 / params.query_batch, times, sum(contended(others))))
    return out
