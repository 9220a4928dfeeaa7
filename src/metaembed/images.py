"""Images in, 8-bit RGB out: the one decode path of the project (prepare's checks, encoding,
training and pretraining collators), with errors that name the input.

Pillow's bare `convert("RGB")` loses data silently: 16-bit grey is clipped to white and
transparent pixels show whatever colour lies under them. `to_rgb` converts them properly.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, UnidentifiedImageError

ImageLike = Union[Image.Image, str, Path, bytes, dict, None]


class ImageDecodeError(ValueError):
    """An image could not be read; the message names its source."""


def load_image(image: ImageLike, where: str = "image") -> Image.Image | None:
    """Open a path, raw bytes, a {'bytes'|'path'} record (HF Image) or a PIL image, as 8-bit RGB."""
    if image is None:
        return None
    if isinstance(image, dict):  # how `datasets` stores an Image feature
        data, path = image.get("bytes"), image.get("path")
        return load_image(data if data is not None else path, where)
    label = _label(image)
    try:
        if isinstance(image, Image.Image):
            return to_rgb(image)
        with Image.open(io.BytesIO(image) if isinstance(image, (bytes, bytearray)) else Path(image)) as opened:
            return to_rgb(opened)
    except FileNotFoundError:
        raise ImageDecodeError(f"{where}: image file not found: {label}") from None
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(f"{where}: {label}: {error} Shrink the image, or raise PIL.Image.MAX_IMAGE_PIXELS "
                               "if you trust its source") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError(f"{where}: cannot decode image ({label}): {error}") from None


def _label(image: ImageLike) -> str:
    if isinstance(image, (bytes, bytearray)):
        return f"{len(image)} bytes"
    if isinstance(image, Image.Image):
        return f"a {image.mode} {image.width}x{image.height} PIL image"
    return str(image)


_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def to_rgb(image):
    """A Pillow image as 8-bit RGB, without the silent losses of a bare `convert("RGB")`.

    Pillow clips 16- and 32-bit grey ("I;16", "I") to 255 instead of scaling, so a 16-bit scan
    turns white; those are scaled from their 16-bit range. 32-bit values beyond it and float
    images have no known range and are refused. Transparent pixels are laid on white, as
    transformers' `convert_to_rgb` does: dropping alpha shows whatever colour the encoder left
    under them, often black.
    """
    if image.mode in _SIXTEEN_BIT or image.mode == "I":
        image = _grey_to_8bit(image)
    elif image.mode == "F":
        raise ValueError("32-bit float image: its value range is unknown; save it as 8- or 16-bit")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image.convert("RGB")


def _grey_to_8bit(image):
    pixels = np.asarray(image)
    if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
        raise ValueError(f"{image.mode} image with values {pixels.min()}..{pixels.max()}, outside the 16-bit range "
                         f"0..65535 that could be scaled to 8 bits; save it as 8- or 16-bit")
    scaled = (pixels.astype(np.uint32) * 255 + 32767) // 65535  # rounded; 65535 * 255 fits in 32 bits
    return Image.fromarray(scaled.astype(np.uint8))
