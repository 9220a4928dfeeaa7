"""Image decoding (metaembed.images, and ImageRef in the data stage): every mode ends as 8-bit RGB with
its content, or a clear refusal naming the input."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from metaembed.data.records import ImageRef
from metaembed.images import ImageDecodeError, load_image, to_rgb


def _png_bit_depth(data: bytes) -> int:
    assert data[12:16] == b"IHDR"
    return struct.unpack(">IIB", data[16:25])[2]


def _sixteen_bit_png(level: int) -> bytes:
    """A real 16-bit greyscale PNG: a left half at `level`, a right half at full scale."""
    pixels = np.full((8, 16), level, np.uint16)
    pixels[:, 8:] = 65535
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    assert _png_bit_depth(buffer.getvalue()) == 16
    return buffer.getvalue()


@pytest.mark.parametrize("as_file", [False, True])
def test_a_16_bit_png_is_scaled_not_clipped_to_white(tmp_path, as_file):
    data = _sixteen_bit_png(64 * 257)  # 8-bit grey 64 in 16 bits
    ref = ImageRef(data=data)
    if as_file:
        (tmp_path / "scan.png").write_bytes(data)
        ref = ImageRef(path=tmp_path / "scan.png")
    pixels = np.asarray(ref.open())
    assert ref.open().mode == "RGB" and pixels.dtype == np.uint8
    assert (pixels[:, :8] == 64).all()  # a bare convert("RGB") gives 255 here
    assert (pixels[:, 8:] == 255).all()


def test_32_bit_grey_outside_the_16_bit_range_is_refused():
    image = Image.fromarray(np.array([[0, 1_000_000]], np.int32))
    assert image.mode == "I"
    with pytest.raises(ValueError, match=r"values 0\.\.1000000, outside the 16-bit range"):
        to_rgb(image)


def test_float_images_are_refused():
    with pytest.raises(ValueError, match="32-bit float image"):
        to_rgb(Image.fromarray(np.zeros((2, 2), np.float32)))


def test_transparent_pixels_become_white_not_black():
    rgba = np.zeros((4, 4, 4), np.uint8)  # transparent black, as many encoders write the background
    rgba[0, 0] = (200, 10, 10, 255)
    pixels = np.asarray(to_rgb(Image.fromarray(rgba)))
    assert tuple(pixels[0, 0]) == (200, 10, 10)
    assert (pixels[1:] == 255).all()


def test_8_bit_images_keep_their_pixels():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(to_rgb(Image.fromarray(rgb))), rgb)
    grey = rgb[..., 0]
    assert np.array_equal(np.asarray(to_rgb(Image.fromarray(grey)))[..., 1], grey)


def test_load_image_is_the_same_path_for_training_and_encoding(tmp_path):
    """Training and pretraining collators decode through load_image: 16-bit grey must not turn white."""
    path = tmp_path / "scan16.png"
    Image.fromarray(np.full((4, 4), 64 * 257, np.uint16)).save(path)
    assert np.asarray(load_image(path))[..., 0].max() == 64
    assert np.asarray(load_image(Image.open(path)))[..., 0].max() == 64


def test_load_image_names_the_input_it_refuses(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    path = tmp_path / "bomb.png"
    Image.new("L", (20, 20)).save(path)
    with pytest.raises(ImageDecodeError, match=r"candidate 3: .*bomb\.png.*MAX_IMAGE_PIXELS"):
        load_image(path, "candidate 3")
    with pytest.raises(ImageDecodeError, match="query 0: .*float"):
        load_image(Image.fromarray(np.zeros((2, 2), np.float32)), "query 0")
