from __future__ import annotations

import io

import pytest

from metaembed.batching import ImageDecodeError, build_batch, image_marker, load_image


def test_mixed_batch_is_left_padded_with_one_image_block_per_image(tiny_backbone, images):
    processor = tiny_backbone.processor
    batch = build_batch(processor, "query", ["short", None, "a longer text query here"], [None, images[0], images[1]])
    assert batch["input_ids"].shape[0] == 3
    assert batch["image_grid_thw"].shape == (2, 3)
    # Left padding: every row ends with a real token.
    assert batch["attention_mask"][:, -1].all()
    assert not batch["attention_mask"][0, 0]
    image_token = processor.image_token_id
    per_row = (batch["input_ids"] == image_token).sum(dim=1).tolist()
    assert per_row[0] == 0 and per_row[1] > 0 and per_row[2] > 0


def test_visual_tokens_are_bounded_by_max_pixels(tiny_backbone):
    from PIL import Image

    processor = tiny_backbone.processor
    big = Image.new("RGB", (1000, 800), "white")
    batch = build_batch(processor, "candidate", images=[big])
    visual_tokens = int((batch["input_ids"] == processor.image_token_id).sum())
    assert visual_tokens <= processor.image_processor.size["longest_edge"] // (16 * 16)


def test_images_from_paths_bytes_and_records(tmp_path, images):
    path = tmp_path / "x.png"
    images[0].save(path)
    buffer = io.BytesIO()
    images[0].save(buffer, format="PNG")
    for source in [path, str(path), buffer.getvalue(), {"bytes": buffer.getvalue(), "path": None}, {"bytes": None, "path": str(path)}]:
        assert load_image(source).size == images[0].size


def test_bad_images_and_batches_are_clear_errors(tiny_backbone, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(ImageDecodeError, match=r"candidate 1: cannot decode image .*broken.png"):
        build_batch(tiny_backbone.processor, "candidate", ["a", None], [None, broken])
    with pytest.raises(ImageDecodeError, match="image file not found"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="empty batch"):
        build_batch(tiny_backbone.processor, "query", texts=[])
    with pytest.raises(ValueError, match="same length"):
        build_batch(tiny_backbone.processor, "query", ["a"], [None, None])
    with pytest.raises(ValueError, match="query 1: .*neither"):
        build_batch(tiny_backbone.processor, "query", ["a", ""], None)


def test_image_marker_uses_backbone_tokens(tiny_backbone):
    assert image_marker(tiny_backbone.processor) == "<|vision_start|><|image_pad|><|vision_end|>"
