"""Caption examples -> Lightning dataloaders.

Batches are a pure function of the step (each epoch a fresh seeded permutation), so a resumed
pretraining sees the same data as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from metaembed.pretraining.captions import (
    Caption,
    CaptionCollator,
    captions,
    split_heldout,
)
from metaembed.pretraining.params import PretrainParams
from metaembed.training.determinism import loader_generator
from metaembed.training.sampler import PreparedTrainSet


class StepBatches:
    """Steps [start, total) of shuffled, epoch-wise batches of indices into `size` examples."""

    def __init__(self, size: int, batch_size: int, total_steps: int, seed: int, start: int = 0):
        if batch_size > size:
            raise ValueError(f"pretrain.batch_size ({batch_size}) is larger than the {size} caption examples")
        self.size, self.batch_size, self.total_steps, self.seed, self.start = size, batch_size, total_steps, seed, start
        self.per_epoch = size // batch_size

    def __len__(self) -> int:
        # The whole run, not what is left: see training.datamodule.RankSlice.
        return self.total_steps

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.total_steps):
            yield self.batch(step)

    def batch(self, step: int) -> list[int]:
        epoch, position = divmod(step, self.per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.size)
        return order[position * self.batch_size : (position + 1) * self.batch_size].tolist()


class CaptionDataModule(L.LightningDataModule):
    def __init__(self, prepared: str | Path, processor, params: PretrainParams):
        super().__init__()
        self.prepared = Path(prepared)
        self.collate = CaptionCollator(processor)
        self.params = params
        self.train_set: list[Caption] = []
        self.heldout: list[Caption] = []

    def setup(self, stage: str | None = None) -> None:
        if self.train_set:
            return
        examples = _without(captions(PreparedTrainSet(self.prepared).pairs), self.params.exclude_sources)
        if not examples:
            raise ValueError(f"{self.prepared}: no training pair pairs an image with text that describes it, "
                             "so there is nothing to pretrain on; set backbone.name_or_path to a pretrained model")
        self.train_set, self.heldout = split_heldout(examples, self.params.heldout_captions, self.params.seed)

    def train_dataloader(self) -> DataLoader:
        start = self.trainer.global_step if self.trainer else 0
        steps = StepBatches(len(self.train_set), self.params.batch_size, self.params.max_steps, self.params.seed, start)
        return DataLoader(self.train_set, batch_sampler=steps, collate_fn=self.collate,
                          num_workers=self.params.num_workers, persistent_workers=self.params.num_workers > 0,
                          generator=loader_generator(self.params.seed))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.heldout, batch_size=64, collate_fn=self.collate,
                          generator=loader_generator(self.params.seed))


def _without(examples: list[Caption], excluded: list[str]) -> list[Caption]:
    known = {e.source for e in examples}
    unknown = sorted(set(excluded) - known)
    if unknown:
        raise ValueError(f"pretrain.exclude_sources names {unknown}, which give no caption examples; "
                         f"the sources that do: {sorted(known)}")
    return [e for e in examples if e.source not in excluded]
