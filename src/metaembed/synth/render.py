"""Pixels for scenes, object crops and document pages, as palette-index arrays.

One fixed palette serves every image, so an image is a small uint8 array and its PNG a pure
function of the array (see `png.py`).
"""

from __future__ import annotations

import numpy as np

from metaembed.synth.font import text_mask, text_width
from metaembed.synth.png import encode_palette_png
from metaembed.synth.scenes import Obj, Scene
from metaembed.synth.vocabulary import COLOURS, INK, PAPER, SCENE_BACKGROUNDS, SIGN

PALETTE: list[tuple[int, int, int]] = [*SCENE_BACKGROUNDS, INK, PAPER, *COLOURS.values()]
INK_INDEX = len(SCENE_BACKGROUNDS)
PAPER_INDEX = INK_INDEX + 1
COLOUR_INDEX = {name: PAPER_INDEX + 1 + i for i, name in enumerate(COLOURS)}


def shape_mask(shape: str, radius: float, box: int) -> np.ndarray:
    """Boolean (box, box) mask of a shape of half-size `radius`, centred in the box."""
    centre = (box - 1) / 2
    y, x = np.mgrid[0:box, 0:box].astype(np.float64) - centre
    r = radius
    masks = {
        "circle": lambda: x**2 + y**2 <= r**2,
        "ring": lambda: (x**2 + y**2 <= r**2) & (x**2 + y**2 >= (0.55 * r) ** 2),
        "square": lambda: (np.abs(x) <= 0.85 * r) & (np.abs(y) <= 0.85 * r),
        "diamond": lambda: np.abs(x) + np.abs(y) <= r,
        "triangle": lambda: (y >= -r) & (y <= r) & (np.abs(x) <= (y + r) / 2),
        "cross": lambda: ((np.abs(x) <= r / 3) & (np.abs(y) <= r)) | ((np.abs(y) <= r / 3) & (np.abs(x) <= r)),
        "bar": lambda: (np.abs(x) <= r) & (np.abs(y) <= r / 3),
    }
    if shape not in masks:
        raise ValueError(f"no drawing for shape {shape!r}; known: {sorted(masks)}")
    return masks[shape]()


def paste(canvas: np.ndarray, mask: np.ndarray, colour: int, top: int, left: int) -> None:
    """Paint `mask` onto `canvas` at (top, left), clipped to the canvas."""
    height, width = canvas.shape
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + mask.shape[0], height), min(left + mask.shape[1], width)
    if t0 >= t1 or l0 >= l1:
        return
    region = mask[t0 - top : t1 - top, l0 - left : l1 - left]
    canvas[t0:t1, l0:l1][region] = colour


def object_mask(obj: Obj, cell_px: int) -> np.ndarray:
    if obj.shape == SIGN:
        return text_mask(obj.word, scale=2 if obj.size == "large" else 1)
    radius = cell_px * (0.40 if obj.size == "large" else 0.22)
    return shape_mask(obj.shape, radius, cell_px)


def draw_object(canvas: np.ndarray, obj: Obj, cell_top: int, cell_left: int, cell_px: int) -> None:
    mask = object_mask(obj, cell_px)
    top = cell_top + (cell_px - mask.shape[0]) // 2 + obj.offset[1]
    left = cell_left + (cell_px - mask.shape[1]) // 2 + obj.offset[0]
    paste(canvas, mask, COLOUR_INDEX[obj.colour], top, left)


def render_scene(scene: Scene, image_size: int, grid: int) -> np.ndarray:
    canvas = np.full((image_size, image_size), scene.background, dtype=np.uint8)
    cell_px = image_size // grid
    margin = (image_size - cell_px * grid) // 2
    for obj in scene.objects:
        row, col = divmod(obj.cell, grid)
        draw_object(canvas, obj, margin + row * cell_px, margin + col * cell_px, cell_px)
    return canvas


def render_crop(obj: Obj, background: int, image_size: int, grid: int, crop_size: int) -> np.ndarray:
    """The object's cell as the scene draws it, scaled (nearest) to `crop_size` pixels."""
    cell_px = image_size // grid
    cell = np.full((cell_px, cell_px), background, dtype=np.uint8)
    draw_object(cell, obj, 0, 0, cell_px)
    index = (np.arange(crop_size) * cell_px) // crop_size
    return cell[index][:, index]


def png(pixels: np.ndarray) -> bytes:
    return encode_palette_png(pixels, PALETTE)


def draw_text(canvas: np.ndarray, text: str, top: int, left: int, scale: int, colour: int = INK_INDEX) -> int:
    """Draw `text`; returns the x just past it."""
    paste(canvas, text_mask(text, scale), colour, top, left)
    return left + text_width(text, scale)
