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

        from metaembed.images import to_rgb

        source = io.BytesIO(self.data) if self.data is not None else self.path
        with Image.open(source) as image:
            return to_rgb(image)

    def as_input(self) -> str | bytes:
        """What `metaembed.images.load_image` accepts."""
        return self.data if self.data is not None else str(self.path)

    def fingerprint(self) -> str:
        if self.data is not None:
            return "sha1:" + hashlib.sha1(self.data).hexdigest()
        return "path:" + str(self.path)


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
