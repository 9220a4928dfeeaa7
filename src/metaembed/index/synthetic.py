"""Clustered synthetic multi-vector embeddings, for the index's tests and benchmark.

Each candidate has a topic near one of `clusters` centres, and its R_c vectors are noisy copies
of that topic; a query is R_q noisy copies of one candidate's topic. So near neighbours crowd in
clusters (harder for an ANN graph than uniform noise), and a candidate's first vector predicts
its full MaxSim only roughly, as a trained model's first vector would. All vectors are unit length.
How well the first vector predicts MaxSim for a real MetaEmbed is a property of the model: measure
recall on real embeddings before trusting these figures there.
"""

from __future__ import annotations

import torch

# Spread of topics around their centre and of vectors around their topic, as a ratio of the
# noise norm to the signal's (1.0: a vector is ~0.7 cosine from its topic).
TOPIC_SPREAD = 0.6
VECTOR_NOISE = 0.5


def topics(num: int, dim: int, clusters: int, seed: int) -> torch.Tensor:
    """[num, dim] unit topics around `clusters` random unit centres."""
    generator = torch.Generator().manual_seed(seed)
    centres = _unit(torch.randn(clusters, dim, generator=generator))
    assignment = torch.randint(0, clusters, (num,), generator=generator)
    return _around(centres[assignment], TOPIC_SPREAD, generator)


def vectors_around(centres: torch.Tensor, num_vectors: int, seed: int) -> torch.Tensor:
    """[n, num_vectors, dim] unit vectors scattered around each row of `centres` [n, dim]."""
    generator = torch.Generator().manual_seed(seed)
    repeated = centres[:, None, :].expand(-1, num_vectors, -1)
    return _around(repeated, VECTOR_NOISE, generator)


def unit_vectors(*shape: int, seed: int) -> torch.Tensor:
    """Uniformly random unit vectors (no clusters): normalised Gaussian noise of `shape`."""
    return _unit(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)))


def row_ids(count: int, start: int = 0) -> list[str]:
    """Ids "doc-<row>" for synthetic rows start, start + 1, ..."""
    return [f"doc-{row}" for row in range(start, start + count)]


def _around(centres: torch.Tensor, spread: float, generator: torch.Generator) -> torch.Tensor:
    noise = _unit(torch.randn(centres.shape, generator=generator))
    return _unit(centres + spread * noise)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)
