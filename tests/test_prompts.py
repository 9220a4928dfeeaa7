from __future__ import annotations

import pytest

from metaembed.prompts import format_prompt


@pytest.mark.parametrize(
    ("side", "text", "has_image", "expected"),
    [
        ("query", "red circle", False, "Query: red circle"),
        ("query", None, True, "<image> Query: Describe the image."),
        ("query", "what colour?", True, "<image> Query: what colour?"),
        ("candidate", "red circle", False, "red circle"),
        ("candidate", "", True, "<image> Describe the image."),
        ("candidate", "a page", True, "<image> a page"),
    ],
)
def test_paper_templates(side, text, has_image, expected):
    assert format_prompt(side, text, has_image) == expected


def test_mmeb_placeholder_keeps_its_place():
    prompt = format_prompt("query", "<|image_1|>\nFind the caption.", True, image_marker="[IMG]")
    assert prompt == "Query: [IMG]\nFind the caption."


def test_placeholder_without_image_and_empty_input_are_refused():
    with pytest.raises(ValueError, match="no image was given"):
        format_prompt("query", "<|image_1|> what", False)
    with pytest.raises(ValueError, match="neither"):
        format_prompt("candidate", "  ", False)
    with pytest.raises(ValueError, match="side must be one of"):
        format_prompt("document", "x", False)
