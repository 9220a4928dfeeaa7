"""Image-caption examples from the training pairs, and their batches for next-token prediction.

A VLM learns to ground words in pixels by describing images; MetaEmbed starts from such a model.
Every training pair with an image on one side and plain text on the other gives one example:
the image and its instruction in, the text out (a label, an answer, a caption, or a question a
document page answers). Pairs with an image on both sides (edits, crops) give none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from metaembed.batching import image_marker, load_image
from metaembed.data.records import ImageRef, Side, TrainPair
from metaembed.prompts import DESCRIBE, MMEB_IMAGE_PLACEHOLDERS


@dataclass(frozen=True)
class Caption:
    image: ImageRef
    instruction: str
    text: str
    source: str
    row: int


def caption_of(pair: TrainPair) -> Caption | None:
    """The example a pair gives, or None when neither side is text alone describing the other's image."""
    sides = (pair.query, pair.positive)
    pictured = [side for side in sides if side.image is not None]
    written = [side for side in sides if side.image is None and side.text.strip()]
    if len(pictured) != 1 or len(written) != 1:
        return None
    return Caption(pictured[0].image, _instruction(pictured[0]), written[0].text.strip(), pair.source, pair.row)


def captions(pairs: Iterable[TrainPair]) -> list[Caption]:
    return [c for pair in pairs if (c := caption_of(pair))]


def split_heldout(examples: list[Caption], count: int, seed: int) -> tuple[list[Caption], list[Caption]]:
    """(training, held-out): `count` examples drawn at random are kept out of training."""
    if count >= len(examples):
        raise ValueError(f"pretrain.heldout_captions ({count}) must be below the {len(examples)} caption "
                         "examples the training split gives")
    order = np.random.default_rng(seed).permutation(len(examples))
    held = set(order[:count].tolist())
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in sorted(held)]


def _instruction(side: Side) -> str:
    text = side.text
    for placeholder in MMEB_IMAGE_PLACEHOLDERS:
        text = text.replace(placeholder, "")
    return text.strip() or DESCRIBE


class CaptionCollator:
    """Captions -> inputs with `labels`: the prompt (image, instruction) left-padded, then the text
    and end-of-text right-padded; only the text and end-of-text are predicted."""

    def __init__(self, processor) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.marker = image_marker(processor)

    def __call__(self, examples: Sequence[Caption]):
        import torch

        prompts = [f"{self.marker} {e.instruction}\n" for e in examples]
        images = [load_image(e.image.as_input(), where=f"{e.source} row {e.row}") for e in examples]
        prompt = self.processor(text=prompts, images=images, padding=True, padding_side="left", return_tensors="pt")
        eos = self.tokenizer.eos_token_id
        targets = [ids + [eos] for ids in self.tokenizer([e.text for e in examples], add_special_tokens=False)["input_ids"]]
        width = max(len(ids) for ids in targets)
        target = torch.full((len(examples), width), eos, dtype=torch.long)
        target_mask = torch.zeros((len(examples), width), dtype=torch.long)
        for i, ids in enumerate(targets):
            target[i, : len(ids)] = torch.tensor(ids)
            target_mask[i, : len(ids)] = 1
        batch = dict(prompt)
        batch["input_ids"] = torch.cat([prompt["input_ids"], target], dim=1)
        batch["attention_mask"] = torch.cat([prompt["attention_mask"], target_mask], dim=1)
        batch["labels"] = torch.cat([torch.full_like(prompt["input_ids"], -100), target.masked_fill(target_mask == 0, -100)], dim=1)
        for key, value in prompt.items():  # per-token extras (e.g. which tokens are visual): text is 0
            if key not in ("input_ids", "attention_mask") and value.shape == prompt["input_ids"].shape:
                batch[key] = torch.cat([value, torch.zeros_like(target)], dim=1)
        return batch
