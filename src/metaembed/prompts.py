"""The prompt templates of the paper, for each side and modality.

    query      text: "Query: {text}"   image: "<image> Query: Describe the image."   both: "<image> Query: {text}"
    candidate  text: "{text}"          image: "<image> Describe the image."          both: "<image> {text}"

MMEB writes the image placeholder inside the text (`<|image_1|>`); such text keeps its own
placement instead of getting the `<image>` prefix.
"""

from __future__ import annotations

from typing import Literal

Side = Literal["query", "candidate"]
SIDES: tuple[Side, ...] = ("query", "candidate")

IMAGE = "<image>"
MMEB_IMAGE_PLACEHOLDERS = ("<|image_1|>",)
DESCRIBE = "Describe the image."


def check_side(side: str) -> Side:
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    return side  # type: ignore[return-value]


def format_prompt(side: Side, text: str | None, has_image: bool, image_marker: str = IMAGE) -> str:
    """Apply the side's template; `image_marker` is what the backbone expects for one image."""
    check_side(side)
    text = (text or "").strip()
    if not text and not has_image:
        raise ValueError("an input needs text, an image or both; got neither")
    prefix = "Query: " if side == "query" else ""
    if has_image and _has_placeholder(text):
        return _replace_placeholders(f"{prefix}{text}", image_marker)
    if not has_image:
        if _has_placeholder(text):
            raise ValueError(f"text refers to an image ({text[:60]!r}) but no image was given")
        return f"{prefix}{text}"
    return f"{image_marker} {prefix}{text or DESCRIBE}"


def _has_placeholder(text: str) -> bool:
    return any(placeholder in text for placeholder in MMEB_IMAGE_PLACEHOLDERS)


def _replace_placeholders(text: str, image_marker: str) -> str:
    for placeholder in MMEB_IMAGE_PLACEHOLDERS:
        text = text.replace(placeholder, image_marker)
    return text
