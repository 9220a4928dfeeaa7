"""A 5x7 bitmap font for the synthetic images.

Text is drawn from this table instead of a TrueType font so that every machine renders the same
pixels: font files and FreeType versions differ between systems, this table does not.
Upper-case letters, digits and a space are enough for the short words the generator writes.
"""

from __future__ import annotations

import numpy as np

GLYPH_WIDTH, GLYPH_HEIGHT, GLYPH_GAP = 5, 7, 1

_ROWS: dict[str, str] = {
    "A": ".###. #...# #...# ##### #...# #...# #...#",
    "B": "####. #...# #...# ####. #...# #...# ####.",
    "C": ".#### #.... #.... #.... #.... #.... .####",
    "D": "####. #...# #...# #...# #...# #...# ####.",
    "E": "##### #.... #.... ####. #.... #.... #####",
    "F": "##### #.... #.... ####. #.... #.... #....",
    "G": ".#### #.... #.... #..## #...# #...# .###.",
    "H": "#...# #...# #...# ##### #...# #...# #...#",
    "I": "##### ..#.. ..#.. ..#.. ..#.. ..#.. #####",
    "J": "..### ...#. ...#. ...#. ...#. #..#. .##..",
    "K": "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
    "L": "#.... #.... #.... #.... #.... #.... #####",
    "M": "#...# ##.## #.#.# #.#.# #...# #...# #...#",
    "N": "#...# ##..# #.#.# #..## #...# #...# #...#",
    "O": ".###. #...# #...# #...# #...# #...# .###.",
    "P": "####. #...# #...# ####. #.... #.... #....",
    "Q": ".###. #...# #...# #...# #.#.# #..#. .##.#",
    "R": "####. #...# #...# ####. #.#.. #..#. #...#",
    "S": ".#### #.... #.... .###. ....# ....# ####.",
    "T": "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
    "U": "#...# #...# #...# #...# #...# #...# .###.",
    "V": "#...# #...# #...# #...# #...# .#.#. ..#..",
    "W": "#...# #...# #...# #.#.# #.#.# ##.## #...#",
    "X": "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
    "Y": "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
    "Z": "##### ....# ...#. ..#.. .#... #.... #####",
    "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
    "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
    "2": ".###. #...# ....# ...#. ..#.. .#... #####",
    "3": "####. ....# ....# .###. ....# ....# ####.",
    "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
    "5": "##### #.... ####. ....# ....# #...# .###.",
    "6": ".###. #.... #.... ####. #...# #...# .###.",
    "7": "##### ....# ...#. ..#.. .#... .#... .#...",
    "8": ".###. #...# #...# .###. #...# #...# .###.",
    "9": ".###. #...# #...# .#### ....# ....# .###.",
    " ": "..... ..... ..... ..... ..... ..... .....",
}

GLYPHS: dict[str, np.ndarray] = {
    char: np.array([[cell == "#" for cell in row] for row in rows.split()], dtype=bool)
    for char, rows in _ROWS.items()
}


def text_mask(text: str, scale: int = 1) -> np.ndarray:
    """Boolean mask of `text` (upper-cased) drawn at an integer `scale`."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    text = text.upper()
    unknown = sorted({char for char in text if char not in GLYPHS})
    if unknown:
        raise ValueError(f"the bitmap font has no glyph for {unknown} in {text!r} (use A-Z, 0-9, space)")
    width = max(len(text) * (GLYPH_WIDTH + GLYPH_GAP) - GLYPH_GAP, 0)
    mask = np.zeros((GLYPH_HEIGHT, width), dtype=bool)
    for index, char in enumerate(text):
        left = index * (GLYPH_WIDTH + GLYPH_GAP)
        mask[:, left : left + GLYPH_WIDTH] = GLYPHS[char]
    return mask.repeat(scale, axis=0).repeat(scale, axis=1)


def text_width(text: str, scale: int = 1) -> int:
    return max(len(text) * (GLYPH_WIDTH + GLYPH_GAP) - GLYPH_GAP, 0) * scale
