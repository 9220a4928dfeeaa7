"""Prepared data -> Lightning dataloaders.

Training batches come from the mixture sampler (each sub-batch from one source, curriculum
phases by progress). Batches are a pure function of the step index, so a resumed run sees the
same data as an uninterrupted one, and under DDP each rank takes its own slice of the global
batch: the ranks together see exactly what one process would.

Validation ranks a small, fixed sample of the held-out MMEB-style queries against a shortened
candidate list (the positive, its one-attribute twins, then the first others) so it stays cheap
enough to run during training; the full evaluation stage reports the real numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from metaembed.data.manifests import load_index, read_mmeb_eval
from metaembed.data.records import EvalQuery
from metaembed.training.collator import PairCollator, encode_sides
from metaembed.training.determinism import loader_generator
from metaembed.training.params import TrainParams
from metaembed.training.sampler import MixtureBatchSampler, PreparedTrainSet


class RankSlice:
    """Steps [start, total) of a step-indexed sampler, this rank's slice of each global batch."""

    def __init__(self, sampler: MixtureBatchSampler, start: int, rank: int, world: int):
        if sampler.batch_size % world:
            raise ValueError(f"train.batch_size ({sampler.batch_size}) must be divisible by the {world} ranks")
        self.sampler, self.start, self.rank, self.world = sampler, start, rank, world

    def __len__(self) -> int:
        # The whole run, not what is left: a resumed Lightning epoch counts the restored steps as
        # done, so a shorter length ends the epoch early and the next one replays from `start`.
        return self.sampler.total_steps

    def __iter__(self) -> Iterator[list[int]]:
        share = self.sampler.batch_size // self.world
        for step in range(self.start, self.sampler.total_steps):
            yield self.sampler.batch(step)[self.rank * share : (self.rank + 1) * share]


class PreparedDataModule(L.LightningDataModule):
    def __init__(self, prepared: str | Path, processor, train: TrainParams):
        super().__init__()
        self.prepared = Path(prepared)
        self.processor = processor
        self.params = train
        self.train_set: PreparedTrainSet | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = PreparedTrainSet(self.prepared)

    def train_dataloader(self) -> DataLoader:
        start = self.trainer.global_step if self.trainer else 0
        return DataLoader(
            self.train_set,
            batch_sampler=self._rank_slice(start),
            collate_fn=_TrainCollator(self.processor, self.params.hard_negatives, self.params.grad_cache_chunk),
            num_workers=self.params.num_workers,
            persistent_workers=self.params.num_workers > 0,
            generator=loader_generator(self.params.seed),
        )

    def calibration_batches(self) -> Iterator[tuple[str, dict]]:
        """This rank's share of the last `train.calibration_batches` training batches (the final
        mixture), as (side, inputs) pairs for MetaEmbed.calibrate_centering."""
        self.setup()
        steps = self._rank_slice(max(0, self.params.max_steps - self.params.calibration_batches))
        collate = PairCollator(self.processor)
        for indices in steps:
            batch = collate([self.train_set[i] for i in indices])
            yield "query", batch["query"]
            yield "candidate", batch["positive"]

    def _rank_slice(self, start: int) -> RankSlice:
        world = self.trainer.world_size if self.trainer else 1
        rank = self.trainer.global_rank if self.trainer else 0
        sampler = MixtureBatchSampler(
            self.train_set,
            batch_size=self.params.batch_size,
            sub_batch_size=self.params.sub_batch_size or self.params.batch_size // world,
            total_steps=self.params.max_steps,
            seed=self.params.seed,
        )
        return RankSlice(sampler, start, rank, world)

    def val_dataloader(self) -> DataLoader:
        queries = validation_queries(self.prepared, self.params.val_queries, self.params.val_candidates, self.params.seed)
        return DataLoader(queries, batch_size=None, collate_fn=_ValidationCollator(self.processor),
                          generator=loader_generator(self.params.seed))


def validation_queries(prepared: Path, count: int, candidates: int, seed: int) -> list[EvalQuery]:
    """A fixed sample of in-distribution MMEB-style queries, spread evenly over subsets."""
    mmeb = load_index(prepared).get("mmeb", {})
    subsets = sorted(name for name, info in mmeb.items() if info.get("split") == "in_distribution")
    if not subsets:
        raise ValueError(f"{prepared}: no in-distribution MMEB-style evaluation set to validate on")
    rng = np.random.default_rng(seed)
    chosen: list[EvalQuery] = []
    for index, subset in enumerate(subsets):
        queries = read_mmeb_eval(prepared, subset)
        take = count // len(subsets) + (index < count % len(subsets))
        picked = rng.choice(len(queries), size=min(take, len(queries)), replace=False)
        chosen += [_shorten(queries[i], candidates) for i in sorted(picked.tolist())]
    return chosen


def _shorten(query: EvalQuery, size: int) -> EvalQuery:
    twins = [i for i in (query.twin_indices or ()) if i != 0]
    others = [i for i in range(1, len(query.candidates)) if i not in set(twins)]
    keep = ([0] + twins + others)[:size]
    return EvalQuery(query.subset, query.row, query.query, tuple(query.candidates[i] for i in keep), None)


class _TrainCollator:
    """PairCollator's output shaped for the module: negatives padded to one per query."""

    def __init__(self, processor, hard_negatives: bool, chunk: int | None = None):
        self.pairs = PairCollator(processor, chunk)
        self.hard_negatives = hard_negatives

    def __call__(self, pairs):
        batch = self.pairs(pairs)
        if not self.hard_negatives:
            batch["negative"] = None
        return batch


class _ValidationCollator:
    def __init__(self, processor):
        self.processor = processor

    def __call__(self, query: EvalQuery) -> dict:
        return {
            "query": encode_sides(self.processor, "query", [query.query]),
            "candidates": encode_sides(self.processor, "candidate", list(query.candidates)),
        }


def negatives_per_query(negative: torch.Tensor, mask: torch.Tensor, index: torch.Tensor, num_queries: int):
    """Scatter the negatives that exist to [B, R_c, D]; queries without one get an all-False mask."""
    full = negative.new_zeros((num_queries, *negative.shape[1:]))
    full_mask = mask.new_zeros((num_queries, *mask.shape[1:]))
    full[index] = negative
    full_mask[index] = mask
    return full, full_mask
