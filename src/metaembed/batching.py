"""Lists of texts and images -> left-padded backbone inputs for one side.

This is the part of batching every caller shares (encoding, training collators, evaluation):
prompt templates, the backbone's image marker, images decoded by `metaembed.images`, and the
per-image visual-token bound the processor enforces (min/max pixels).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from metaembed.images import ImageDecodeError, ImageLike, load_image  # noqa: F401 (re-exported)
from metaembed.prompts import Side, check_side, format_prompt


def image_marker(processor: Any) -> str:
    """The text one image becomes before the processor expands it to its visual tokens."""
    tokenizer = processor.tokenizer
    start = getattr(tokenizer, "vision_start_token", None) or "<|vision_start|>"
    end = getattr(tokenizer, "vision_end_token", None) or "<|vision_end|>"
    return f"{start}{processor.image_token}{end}"


def build_batch(
    processor: Any,
    side: Side,
    texts: Sequence[str | None] | None = None,
    images: Sequence[ImageLike] | None = None,
):
    """Prompted, tokenised, left-padded inputs (a transformers BatchFeature of tensors)."""
    check_side(side)
    texts, images = _align(texts, images)
    decoded = [load_image(image, where=f"{side} {index}") for index, image in enumerate(images)]
    marker = image_marker(processor)
    prompts = []
    for index, (text, image) in enumerate(zip(texts, decoded)):
        try:
            prompts.append(format_prompt(side, text, image is not None, marker))
        except ValueError as error:
            raise ValueError(f"{side} {index}: {error}") from None
    present = [image for image in decoded if image is not None]
    return processor(
        text=prompts,
        images=present or None,
        padding=True,
        padding_side="left",
        return_tensors="pt",
    )


def _align(texts, images) -> tuple[list, list]:
    if texts is None and images is None:
        raise ValueError("give texts, images or both")
    size = len(texts) if texts is not None else len(images)
    texts = list(texts) if texts is not None else [None] * size
    images = list(images) if images is not None else [None] * size
    if len(texts) != len(images):
        raise ValueError(f"texts ({len(texts)}) and images ({len(images)}) must have the same length")
    if size == 0:
        raise ValueError("empty batch: give at least one text or image")
    return texts, images
