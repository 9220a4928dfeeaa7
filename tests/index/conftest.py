"""Small random and clustered candidate sets, and one thread per kernel.

On this shared 2-core machine a 2-thread OpenMP kernel waits for a descheduled thread on every
tiny matmul (40x slower measured), so the index tests run torch and faiss on one thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from metaembed.index import synthetic


@pytest.fixture(autouse=True)
def one_thread():
    import faiss

    before = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(before[0])
    faiss.omp_set_num_threads(before[1])


@dataclass(frozen=True)
class Clustered:
    candidates: torch.Tensor  # [N, R_c, D]
    queries: torch.Tensor  # [B, R_q, D]
    ids: list[str]


@pytest.fixture(scope="session")
def clustered() -> Clustered:
    """20k candidates of 16 x 64 in 200 clusters, and 40 queries aimed at random candidates."""
    num, clusters = 20_000, 200
    topics = synthetic.topics(num, 64, clusters, seed=0)
    targets = torch.randint(0, num, (40,), generator=torch.Generator().manual_seed(1))
    return Clustered(synthetic.vectors_around(topics, 16, seed=2),
                     synthetic.vectors_around(topics[targets], 8, seed=3), synthetic.row_ids(num))


@pytest.fixture(scope="session")
def clustered_index(clustered):
    """The clustered set in a bfloat16 index with an HNSW first stage (built once: ~4 s)."""
    import faiss

    from metaembed.index import MultiVectorIndex

    faiss.omp_set_num_threads(1)
    return MultiVectorIndex.build(clustered.candidates, None, clustered.ids, dtype="bfloat16",
                                  first_stage="hnsw")
