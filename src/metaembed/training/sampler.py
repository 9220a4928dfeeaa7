"""Training batches drawn by the mixture weights of `data/prepared/train/mixture.json`.

As in the paper, each sub-batch comes from a single source (its in-batch negatives are then of the
same kind), the source picked by the weights of the current curriculum phase. Within a batch no two
rows share a positive (same text and image): a copy would be a false in-batch negative.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from metaembed.data import manifests
from metaembed.data.manifests import Mixture
from metaembed.data.records import TrainPair


class PreparedTrainSet:
    """All training pairs of the prepared sources, addressed by one global index."""

    def __init__(self, prepared: str | Path, sources: list[str] | None = None) -> None:
        self.prepared = Path(prepared)
        self.mixture = Mixture.load(self.prepared)
        self.sources = sorted(sources if sources is not None else self.mixture.sources)
        self.pairs: list[TrainPair] = []
        self.offsets: dict[str, int] = {}
        for source in self.sources:
            self.offsets[source] = len(self.pairs)
            self.pairs += manifests.read_train(self.prepared, source)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> TrainPair:
        return self.pairs[index]

    def pos_keys(self) -> dict[str, list[str]]:
        return {source: manifests.read_pos_keys(self.prepared, source) for source in self.sources}


class MixtureBatchSampler:
    """Yields `total_steps` batches of global indices into a PreparedTrainSet (a torch batch_sampler)."""

    def __init__(self, dataset: PreparedTrainSet, batch_size: int, sub_batch_size: int, total_steps: int,
                 seed: int = 0) -> None:
        if batch_size < 1 or sub_batch_size < 1 or batch_size % sub_batch_size:
            raise ValueError(f"batch_size ({batch_size}) must be a positive multiple of sub_batch_size "
                             f"({sub_batch_size})")
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if not dataset.sources:
            raise ValueError(f"{dataset.prepared}: no training source in the prepared data")
        self.dataset = dataset
        self.batch_size, self.sub_batch_size, self.total_steps, self.seed = batch_size, sub_batch_size, total_steps, seed
        self.keys = dataset.pos_keys()
        self.phases = dataset.mixture.phases

    def __len__(self) -> int:
        return self.total_steps

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.total_steps):
            yield self.batch(step)

    def weights_at(self, step: int) -> np.ndarray:
        """Source probabilities of the curriculum phase that holds `step`."""
        progress = step / self.total_steps
        phase = next((p for p in self.phases if progress < p["until"]), self.phases[-1])
        weights = np.array([phase["weights"].get(source, 0.0) for source in self.dataset.sources])
        return weights / weights.sum()

    def batch(self, step: int) -> list[int]:
        rng = np.random.default_rng([self.seed, step])
        weights = self.weights_at(step)
        taken: set[str] = set()
        indices: list[int] = []
        for _ in range(self.batch_size // self.sub_batch_size):
            source = self.dataset.sources[int(rng.choice(len(weights), p=weights))]
            rows = self._rows(rng, source, taken)
            indices += [self.dataset.offsets[source] + row for row in rows]
        return indices

    def _rows(self, rng: np.random.Generator, source: str, taken: set[str]) -> list[int]:
        keys = self.keys[source]
        rows: list[int] = []
        for row in rng.permutation(len(keys)).tolist():
            if keys[row] not in taken:
                taken.add(keys[row])
                rows.append(row)
                if len(rows) == self.sub_batch_size:
                    return rows
        raise ValueError(f"training source {source!r} has only {len(rows)} distinct positives left for a "
                         f"sub-batch of {self.sub_batch_size}; lower the sub-batch size or drop the source "
                         f"(prepare.mixture.weights: {{{source}: 0}})")
