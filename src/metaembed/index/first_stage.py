"""The first stage: faiss nearest neighbours on each candidate's leading vector(s).

MetaEmbed trains its first vector to retrieve alone (the (1, 1) budget), so a single-vector ANN
index over it shortlists candidates that the exact budgeted MaxSim then reranks (`vectors=1`, the
default). How well that shortlist holds the top-k of a large budget depends on how nested the
model's vectors really are; with `vectors=m > 1` each candidate puts its first m vectors in the ANN
(faiss entry row * m + j) and each query vector of the budget shortlists its own nearest
candidates, as ColBERT's candidate generation does. With `pool="mean"` the ANN holds one vector per
candidate, the normalised mean of its real vectors, and the query asks with the normalised mean of
its budget's r_q vectors: a one-vector summary of the whole set (docs/index.md measures all three). Removed rows,
padding vectors and, for a budget's r_c < m, the vectors past r_c are skipped with an
IDSelectorBitmap, so nothing needs rebuilding when rows are tombstoned.

    "hnsw"  IndexHNSWFlat, inner product: sub-linear, approximate (M, efConstruction, efSearch)
    "flat"  IndexFlatIP: exact, linear in N (a reference, or small indexes)

The first vectors are kept in float32 here whatever the rerank dtype: 4 * D bytes per candidate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

KINDS = ("hnsw", "flat")
POOLS = ("first", "mean")


@dataclass(frozen=True)
class FirstStageSettings:
    kind: str
    hnsw_m: int = 32  # neighbours per node: more links, better recall, slower build
    # Build-time beam. On the 20k test set 80 built 3x faster than 200 (2.5 s vs 7.9 s) and kept
    # the two-stage recall@10 at 1.0; the shortlist's own recall of the exact first-vector top-256
    # was 0.93 against 0.99 (docs/index.md).
    ef_construction: int = 80
    ef_search: int = 64  # search-time beam; raised to first_stage_k when that is larger
    vectors: int = 1  # leading vectors of each candidate in the ANN (see the module docstring)
    pool: str = "first"  # "mean": one mean vector per candidate instead (see the module docstring)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown first_stage {self.kind!r}; use 'hnsw', 'flat' or None")
        if self.pool not in POOLS:
            raise ValueError(f"unknown first stage pool {self.pool!r}; use 'first' or 'mean'")
        if self.pool == "mean" and self.vectors != 1:
            raise ValueError(f"a mean-pooled first stage holds one vector per candidate, not vectors={self.vectors}")
        for name in ("hnsw_m", "ef_construction", "ef_search", "vectors"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"first stage {name} must be an int >= 1, got {value!r}")

    def to_json(self) -> dict[str, Any]:
        fields = asdict(self)
        if self.kind == "flat":
            fields = {"kind": "flat", "vectors": self.vectors, "pool": self.pool}
        return fields

    @staticmethod
    def from_json(fields: dict[str, Any] | None) -> FirstStageSettings | None:
        return None if fields is None else FirstStageSettings(**fields)


def build(settings: FirstStageSettings, dim: int) -> Any:
    """An empty faiss index for D-dimensional first vectors."""
    import faiss

    if settings.kind == "flat":
        return faiss.IndexFlatIP(dim)
    index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = settings.ef_construction
    index.hnsw.efSearch = settings.ef_search
    return index


def mean_vectors(vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[n, 1, D]: the unit mean of each row's real vectors (mask [n, R])."""
    summed = (vectors * mask[..., None]).sum(dim=1, keepdim=True)
    return torch.nn.functional.normalize(summed, dim=-1)


def add(index: Any, leading_vectors: np.ndarray) -> None:
    """Append the [n, vectors, D] leading vectors of n rows: faiss numbers entries on from
    index.ntotal, so entry row * vectors + j is vector j of row `row`."""
    flat = leading_vectors.reshape(-1, leading_vectors.shape[-1])
    index.add(np.ascontiguousarray(flat, dtype=np.float32))


def search(
    index: Any,
    settings: FirstStageSettings,
    queries: np.ndarray,
    k: int,
    allowed: np.ndarray | None,
    ef_search: int | None = None,
) -> np.ndarray:
    """Entries [B, k] (int64) of the k best entries per query vector [B, D], -1 where fewer were found.

    allowed: bool [ntotal], False for entries to skip; None when every entry may be returned.
    """
    import faiss

    selector = None
    if allowed is not None:
        # Bit i (little-endian within each byte) selects entry i; faiss keeps no reference to the
        # bitmap, so it must outlive the search: it is a local here.
        bitmap = np.packbits(allowed, bitorder="little")
        selector = faiss.IDSelectorBitmap(bitmap)
    if settings.kind == "hnsw":
        # A beam narrower than k cannot return k results.
        beam = max(ef_search or settings.ef_search, k)
        params = faiss.SearchParametersHNSW(efSearch=beam, sel=selector)
    else:
        params = faiss.SearchParameters(sel=selector)
    _, rows = index.search(np.ascontiguousarray(queries, dtype=np.float32), k, params=params)
    return rows


def write(index: Any, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def read(path: Path, mmap: bool = False) -> Any:
    """The saved faiss index; `mmap` maps its vectors instead of reading them (a 1M-row HNSW file
    opened in 0.16 s instead of 1.3-1.6 s). A mapped index cannot grow: `owned` copies it first."""
    import faiss

    return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC if mmap else 0)


def owned(index: Any) -> Any:
    """An in-memory copy of a (memory-mapped) faiss index that `add` may grow. faiss aborts the
    process when a mapped index grows, and clone_index keeps the mapping, so it goes through bytes."""
    import faiss

    return faiss.deserialize_index(faiss.serialize_index(index))
