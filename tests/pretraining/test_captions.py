"""Which pairs become caption examples, and how their batches mark what is predicted."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metaembed.data.records import ImageRef, Side, TrainPair
from metaembed.pretraining.captions import (
    CaptionCollator,
    caption_of,
    captions,
    split_heldout,
)
from metaembed.prompts import DESCRIBE
from metaembed.training.sampler import PreparedTrainSet


def _pair(query: Side, positive: Side, source: str = "mmeb/X") -> TrainPair:
    return TrainPair(source=source, row=3, query=query, positive=positive)


def test_caption_of_takes_the_text_side_as_the_caption_of_the_image_side():
    image = ImageRef(path=Path("scene.png"))
    labelled = caption_of(_pair(Side("<|image_1|>\nRepresent the given image for classification", image), Side("large red cross")))
    assert (labelled.instruction, labelled.text) == ("Represent the given image for classification", "large red cross")
    described = caption_of(_pair(Side("Find an image: small blue ring"), Side("<|image_1|>", image)))
    assert (described.instruction, described.text) == (DESCRIBE, "Find an image: small blue ring")
    assert caption_of(_pair(Side("edit it", image), Side("", image))) is None  # image on both sides
    assert caption_of(_pair(Side("a question"), Side("an answer"))) is None  # no image


def test_split_heldout_is_seeded_disjoint_and_refuses_to_hold_out_everything():
    examples = [caption_of(_pair(Side("q", ImageRef(path=Path("scene.png"))), Side(f"label {i}"))) for i in range(10)]
    train, held = split_heldout(examples, 3, seed=0)
    assert len(held) == 3 and len(train) == 7 and not {c.text for c in train} & {c.text for c in held}
    assert split_heldout(examples, 3, seed=0) == (train, held)
    with pytest.raises(ValueError, match="heldout_captions"):
        split_heldout(examples, 10, seed=0)


def test_collator_predicts_exactly_the_caption_and_end_of_text(prepared_dir, tiny_backbone):
    examples = captions(PreparedTrainSet(prepared_dir).pairs)
    assert examples, "the generated training split gives caption examples"
    chosen = examples[:2] + examples[-2:]
    batch = CaptionCollator(tiny_backbone.processor)(chosen)
    tokenizer = tiny_backbone.processor.tokenizer
    for row, example in enumerate(chosen):
        predicted = batch["labels"][row][batch["labels"][row] != -100]
        assert predicted[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(predicted[:-1]).strip() == example.text
        # every predicted token is attended to, and padding is never predicted
        assert batch["attention_mask"][row][batch["labels"][row] != -100].all()
    assert batch["input_ids"].shape == batch["attention_mask"].shape == batch["labels"].shape
    assert int(batch["image_grid_thw"].shape[0]) == len(chosen)
    assert torch.isfinite(batch["pixel_values"]).all()
