"""Which caption examples the pretraining sees, and in which order."""

from __future__ import annotations

import pytest

from metaembed.pretraining.datamodule import CaptionDataModule, StepBatches
from metaembed.pretraining.params import PretrainParams


def test_step_batches_are_a_function_of_the_step_so_a_resume_sees_the_same_data():
    whole = list(StepBatches(10, 4, total_steps=6, seed=1))
    assert list(StepBatches(10, 4, total_steps=6, seed=1, start=4)) == whole[4:]
    assert all(len(batch) == 4 and len(set(batch)) == 4 for batch in whole)
    assert len(set(whole[0]) | set(whole[1])) == 8  # the two batches of one epoch do not overlap
    with pytest.raises(ValueError, match="batch_size"):
        StepBatches(3, 4, total_steps=1, seed=0)


def _setup(prepared_dir, processor, **params) -> CaptionDataModule:
    data = CaptionDataModule(prepared_dir, processor, PretrainParams(heldout_captions=4, **params))
    data.setup()
    return data


def test_excluded_sources_give_no_examples_and_unknown_ones_are_named(prepared_dir, tiny_backbone):
    everything = _setup(prepared_dir, tiny_backbone.processor)
    sources = {e.source for e in everything.train_set + everything.heldout}
    assert "colpali_train_set" in sources and len(sources) > 1
    kept = _setup(prepared_dir, tiny_backbone.processor, exclude_sources=["colpali_train_set"])
    assert {e.source for e in kept.train_set + kept.heldout} == sources - {"colpali_train_set"}
    with pytest.raises(ValueError, match=r"pretrain.exclude_sources names \['NoSuchSource'\]"):
        _setup(prepared_dir, tiny_backbone.processor, exclude_sources=["NoSuchSource"])
