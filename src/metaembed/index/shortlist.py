"""The rows each query's exact rerank scores in a two-stage search, from the first stage's ANN.

With one vector per candidate in the ANN (`FirstStageSettings.vectors == 1`) a query's first
vector asks for the first_stage_k nearest first vectors (pool "mean": the mean of the query's r_q
vectors asks for the nearest candidate means). With m > 1, each real query vector of the
budget asks for its own share, ceil(first_stage_k / r_q) distinct rows, among the vectors a budget
of r_c may score (j < min(m, r_c)); a query's shortlist is the union, so it stays near first_stage_k
rows. Over-fetching entries (a row can hold several of a query vector's nearest entries) keeps each
share full in practice; a share that comes back short just shortlists fewer rows. A budget that may
score only width = min(m, r_c) of the m vectors lets the search return one entry in m / width: an
HNSW beam of the usual width then finds few allowed entries (at (1, 1) with m = 64, recall@10 fell
to 0.20 on the evaluation corpus), so the beam is widened by that factor, up to _MAX_BEAM.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from metaembed.index import first_stage as stage1
from metaembed.index.first_stage import FirstStageSettings
from metaembed.index.store import VectorStore

# Entries fetched per wanted row and query vector, when a row holds several ANN entries.
_OVERFETCH = 4
# The widened beam's cap: past it a filtered HNSW search costs about as much as a flat scan.
_MAX_BEAM = 4096


def shortlists(ann: Any, settings: FirstStageSettings, store: VectorStore, removed: np.ndarray,
               queries: torch.Tensor, query_mask: torch.Tensor, budget: tuple[int, int], first_stage_k: int,
               ef_search: int | None) -> list[np.ndarray]:
    """Per query, the rows (ascending, unique, live) to rerank."""
    if settings.vectors == 1:
        live = ~removed if removed.any() else None
        if settings.pool == "mean":
            asking = stage1.mean_vectors(queries[:, : budget[0]], query_mask[:, : budget[0]])[:, 0]
        else:
            asking = queries[:, 0]
        found = stage1.search(ann, settings, asking.numpy(), min(first_stage_k, store.num_rows), live, ef_search)
        return [_live(np.unique(rows[rows >= 0]), removed) for rows in found]
    return _per_query_vector(ann, settings, store, removed, queries, query_mask, budget, first_stage_k, ef_search)


def _per_query_vector(ann: Any, settings: FirstStageSettings, store: VectorStore, removed: np.ndarray,
                      queries: torch.Tensor, query_mask: torch.Tensor, budget: tuple[int, int],
                      first_stage_k: int, ef_search: int | None) -> list[np.ndarray]:
    m = settings.vectors
    r_q, r_c = budget
    allowed = _allowed_entries(store, removed, m, min(m, r_c))
    share = math.ceil(first_stage_k / r_q)
    fetch = min(share * min(m, r_c, _OVERFETCH), int(allowed.sum()))
    if fetch == 0:
        return [np.zeros(0, dtype=np.int64) for _ in range(len(queries))]
    vectors = queries[:, :r_q].reshape(-1, queries.shape[-1]).numpy()
    base = max(ef_search or settings.ef_search, fetch)
    beam = min(base * math.ceil(m / min(m, r_c)), max(base, _MAX_BEAM))
    entries = stage1.search(ann, settings, vectors, fetch, allowed, beam).reshape(len(queries), r_q, fetch)
    out = []
    for b in range(len(queries)):
        picked = [_first_distinct(entries[b, j][entries[b, j] >= 0] // m, share)
                  for j in range(r_q) if query_mask[b, j]]
        out.append(np.unique(np.concatenate(picked)))
    return out


def _allowed_entries(store: VectorStore, removed: np.ndarray, m: int, width: int) -> np.ndarray:
    """bool [N * m]: entry row * m + j may be returned (row live, vector j real, j < width)."""
    allowed = np.concatenate([np.asarray(segment.mask[:, :m]) for segment in store.segments]) & ~removed[:, None]
    allowed[:, width:] = False
    return allowed.reshape(-1)


def _first_distinct(rows: np.ndarray, count: int) -> np.ndarray:
    """The first `count` distinct rows, in the order found (nearest first)."""
    _, first = np.unique(rows, return_index=True)
    return rows[np.sort(first)][:count]


def _live(rows: np.ndarray, removed: np.ndarray) -> np.ndarray:
    # The selector already skips removed rows; this keeps "never returned" independent of it.
    return rows[~removed[rows]]
