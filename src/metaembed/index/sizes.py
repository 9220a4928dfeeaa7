"""Bytes an index holds per candidate, for reports: the rerank vectors a budget reads, and the
first stage beside them.

The float dtypes reuse `metaembed.costs.bytes_per_element`, so a bfloat16 or float32 index
agrees with the sweep's cost table (r_c * D * bytes per element). The two quantised dtypes add
what costs.py does not model: int8 keeps a float32 scale per vector, binary packs 8 components
per byte. Not counted: the bool mask (1 byte per stored vector), the id and the tombstone.

Imports nothing heavy, so a CLI can use it while building its parser.
"""

from __future__ import annotations

import math

from metaembed.costs import bytes_per_element

INDEX_DTYPES = ("float32", "bfloat16", "int8", "binary")
# faiss IndexHNSWFlat keeps 2*M int32 neighbour slots at level 0 per vector; upper levels
# (reached with probability 1/M each) and the level/offset bookkeeping add about this much.
_HNSW_FIXED_BYTES = 16


def vector_bytes(dtype: str, dim: int) -> int:
    """Stored bytes of one rerank vector of D components."""
    _check_dim(dim)
    if dtype == "binary":
        return math.ceil(dim / 8)
    if dtype == "int8":
        return dim + 4  # codes + the vector's float32 scale
    if dtype not in INDEX_DTYPES:
        raise ValueError(f"unknown index dtype {dtype!r}; supported: {', '.join(INDEX_DTYPES)}")
    return dim * bytes_per_element(dtype)


def index_bytes_per_candidate(dtype: str, r_c: int, dim: int) -> int:
    """Bytes of one candidate's first r_c rerank vectors: what scoring at budget (., r_c) reads,
    and, with r_c = R_c, what the vector file holds per candidate."""
    if isinstance(r_c, bool) or not isinstance(r_c, int) or r_c < 1:
        raise ValueError(f"r_c must be an int >= 1, got {r_c!r}")
    return r_c * vector_bytes(dtype, dim)


def first_stage_bytes_per_candidate(kind: str | None, dim: int, hnsw_m: int = 32, vectors: int = 1) -> int:
    """Approximate bytes per candidate of the first stage: its `vectors` float32 leading vectors,
    plus the HNSW graph's links for each (about 2*M int32 at level 0)."""
    _check_dim(dim)
    if kind is None:
        return 0
    if kind == "flat":
        return vectors * 4 * dim
    if kind == "hnsw":
        return vectors * (4 * dim + 8 * hnsw_m + _HNSW_FIXED_BYTES)
    raise ValueError(f"unknown first stage {kind!r}; supported: 'hnsw', 'flat', None")


def _check_dim(dim: int) -> None:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be an int >= 1, got {dim!r}")
