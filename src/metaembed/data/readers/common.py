"""Pieces every reader shares: finding parquet files, turning image cells into ImageRefs, checking
that an image can be used."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from metaembed.data.records import ImageRef

CheckImages = Literal["decode", "exists", "none"]


class ImageChecker:
    """Checks each distinct image once; MMEB candidates reuse the same files many times."""

    def __init__(self, mode: CheckImages = "exists") -> None:
        if mode not in ("decode", "exists", "none"):
            raise ValueError(f"check_images must be decode, exists or none, got {mode!r}")
        self.mode = mode
        self._seen: dict[str, str | None] = {}

    def problem(self, ref: ImageRef) -> str | None:
        """None if the image is usable, else what is wrong with it."""
        if self.mode == "none":
            return None
        key = ref.fingerprint() if ref.data is None else str(id(ref.data))
        if key not in self._seen:
            self._seen[key] = self._check(ref)
        return self._seen[key]

    def _check(self, ref: ImageRef) -> str | None:
        if not ref.exists():
            return f"image file not found: {ref.describe()}"
        if self.mode == "exists":
            return None
        try:
            ref.open()
        except Exception as error:  # Pillow raises several types for broken files
            return f"cannot decode image {ref.describe()}: {type(error).__name__}: {error}"
        return None


def parquet_files(folder: Path, pattern: str) -> list[Path]:
    return sorted(path for path in folder.glob(pattern) if path.is_file())


def path_image(value: Any, root: Path) -> ImageRef | None:
    """An MMEB image column: a path relative to the image root, "" or null for no image."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return ImageRef(path=root / str(value))


def struct_image(value: Any, root: Path) -> ImageRef | None:
    """A `datasets` Image cell ({bytes, path}), raw bytes, or a path; paths resolve against `root`."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return ImageRef(data=bytes(value))
    if isinstance(value, str):
        return path_image(value, root)
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return ImageRef(data=bytes(value["bytes"]))
        return path_image(value.get("path"), root)
    raise TypeError(f"unsupported image cell of type {type(value).__name__}")


def text(value: Any) -> str:
    return "" if value is None else str(value)


def row_values(row: dict[str, Any]) -> dict[str, Any]:
    """A row as JSON-friendly values for a quarantine file (image bytes shown by their size)."""

    def clean(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray)):
            return f"<{len(value)} bytes>"
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return {key: clean(value) for key, value in row.items()}
