"""What every reader returns, whatever the on-disk format: sides of text and image, pairs for
training, ranked candidate lists for MMEB evaluation, and corpus/queries/qrels for page retrieval."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ImageRef:
    """An image given as a file path or as encoded bytes (what `datasets` calls an Image)."""

    path: Path | None = None
    data: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.path is None) == (self.data is None):
            raise ValueError("an ImageRef needs exactly one of a path or bytes")

    def describe(self) -> str:
        return str(self.path) if self.path is not None else f"<{len(self.data or b'')} embedded bytes>"

    def read_bytes(self) -> bytes:
        return self.data if self.data is not None else Path(self.path).read_bytes()

    def exists(self) -> bool:
        return self.data is not None or Path(self.path).is_file()

    def open(self):
        """The decoded image in 8-bit RGB (Pillow imported here: readers stay light without it)."""
        from PIL import Image

        source = io.BytesIO(self.data) if self.data is not None else self.path
        with Image.open(source) as image:
            return to_rgb(image)

    def as_input(self) -> str | bytes:
        """What `metaembed.batching.load_image` accepts."""
        return self.data if self.data is not None else str(self.path)

    def fingerprint(self) -> str:
        if self.data is not None:
            return "sha1:" + hashlib.sha1(self.data).hexdigest()
        return "path:" + str(self.path)


_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def to_rgb(image):
    """A Pillow image as 8-bit RGB, without the silent losses of a bare `convert("RGB")`.

    Pillow clips 16- and 32-bit grey ("I;16", "I") to 255 instead of scaling, so a 16-bit scan
    turns white; those are scaled from their 16-bit range. 32-bit values beyond it and float
    images have no known range and are refused. Transparent pixels are laid on white, as
    transformers' `convert_to_rgb` does: dropping alpha shows whatever colour the encoder left
    under them, often black.
    """
    from PIL import Image

    if image.mode in _SIXTEEN_BIT or image.mode == "I":
        image = _grey_to_8bit(image)
    elif image.mode == "F":
        raise ValueError("32-bit float image: its value range is unknown; save it as 8- or 16-bit")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image.convert("RGB")


def _grey_to_8bit(image):
    import numpy as np
    from PIL import Image

    pixels = np.asarray(image)
    if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
        raise ValueError(f"{image.mode} image with values {pixels.min()}..{pixels.max()}, outside the 16-bit range "
                         f"0..65535 that could be scaled to 8 bits; save it as 8- or 16-bit")
    scaled = (pixels.astype(np.uint32) * 255 + 32767) // 65535  # rounded; 65535 * 255 fits in 32 bits
    return Image.fromarray(scaled.astype(np.uint8))


@dataclass(frozen=True)
class Side:
    """One input of a query or a candidate: text (may hold `<|image_1|>`), an image, or both."""

    text: str = ""
    image: ImageRef | None = None

    @property
    def empty(self) -> bool:
        return not self.text.strip() and self.image is None


@dataclass(frozen=True)
class TrainPair:
    source: str
    row: int
    query: Side
    positive: Side
    negative: Side | None = None


@dataclass(frozen=True)
class EvalQuery:
    subset: str
    row: int
    query: Side
    candidates: tuple[Side, ...]  # the positive first, as MMEB stores it
    twin_indices: tuple[int, ...] | None = None  # one-attribute twins, where the data says


@dataclass
class RetrievalSet:
    """A page-retrieval set in BEIR terms; ids are strings (what pytrec_eval expects)."""

    name: str
    corpus: dict[str, ImageRef]
    queries: dict[str, str]
    qrels: dict[str, dict[str, float]]
    languages: dict[str, str] = field(default_factory=dict)
