import io

import numpy as np
import pytest
from PIL import Image

from metaembed.synth.font import text_mask, text_width
from metaembed.synth.png import encode_palette_png

PALETTE = [(i, 255 - i, (7 * i) % 256) for i in range(24)]


@pytest.mark.parametrize("shape", [(1, 1), (112, 112), (5, 300), (4, 700)])
@pytest.mark.parametrize("kind", ["flat", "noise", "blocks"])
def test_png_decodes_to_the_same_pixels(shape, kind):
    rng = np.random.default_rng(0)
    pixels = {"flat": np.full(shape, 3, np.uint8), "noise": rng.integers(0, 24, shape).astype(np.uint8),
              "blocks": np.kron(rng.integers(0, 24, (shape[0] // 4 + 1, shape[1] // 4 + 1)),
                                np.ones((4, 4)))[: shape[0], : shape[1]].astype(np.uint8)}[kind]
    data = encode_palette_png(pixels, PALETTE)
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "P"
        assert np.array_equal(np.array(image), pixels)
        assert image.getpalette()[: 3 * len(PALETTE)] == [c for rgb in PALETTE for c in rgb]
    assert encode_palette_png(pixels, PALETTE) == data


def test_png_rejects_an_index_outside_the_palette():
    with pytest.raises(ValueError, match="palette of 2 colours"):
        encode_palette_png(np.array([[0, 5]], np.uint8), PALETTE[:2])


def test_text_mask_size_and_unknown_glyph():
    mask = text_mask("Cat", scale=2)
    assert mask.shape == (14, text_width("cat", 2)) == (14, 34)
    assert mask.any() and not mask[:, 10:12].any()  # the gap between two glyphs stays blank
    with pytest.raises(ValueError, match=r"no glyph for \['\?'\]"):
        text_mask("a?")
