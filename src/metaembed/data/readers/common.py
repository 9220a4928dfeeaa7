"""Pieces every reader shares: finding parquet files, turning image cells into ImageRefs, checking
that an image can be used."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from metaembed.data.problems import FileCounts, ReadResult
from metaembed.data.records import ImageRef
from metaembed.data.tables import Kind, TableError, read_table

CheckImages = Literal["decode", "exists", "none"]
# transformers' Qwen2-VL `smart_resize` raises on wider strips, so training would stop on them.
MAX_ASPECT_RATIO = 200


class ImageChecker:
    """Checks each distinct image once; MMEB candidates reuse the same files many times.

    Verdicts are keyed by the image's path or the hash of its bytes, never by `id()`: once a bad
    image's bytes are freed, a good one may reuse the address and inherit the bad verdict."""

    def __init__(self, mode: CheckImages = "exists") -> None:
        if mode not in ("decode", "exists", "none"):
            raise ValueError(f"check_images must be decode, exists or none, got {mode!r}")
        self.mode = mode
        self._seen: dict[str, str | None] = {}

    def problem(self, ref: ImageRef) -> str | None:
        """None if the image is usable, else what is wrong with it."""
        if self.mode == "none":
            return None
        key = ref.fingerprint()
        if key not in self._seen:
            self._seen[key] = self._check(ref)
        return self._seen[key]

    def _check(self, ref: ImageRef) -> str | None:
        if not ref.exists():
            return f"image file not found: {ref.describe()}"
        if self.mode == "exists":
            return None
        from PIL import Image

        try:
            with warnings.catch_warnings():
                # Pillow only warns between MAX_IMAGE_PIXELS and twice that; either way training
                # would decode a huge image for every step that draws it.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = ref.open()
        except Exception as error:  # Pillow raises several types for broken files
            return f"cannot decode image {ref.describe()}: {type(error).__name__}: {error}"
        width, height = image.size
        if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
            return (f"image {ref.describe()} is {width}x{height}: the Qwen2-VL image processor refuses aspect "
                    f"ratios above {MAX_ASPECT_RATIO}; crop or pad it")
        return None


def parquet_files(folder: Path, pattern: str) -> list[Path]:
    return sorted(path for path in folder.glob(pattern) if path.is_file())


def read_or_reject(path: Path, columns: Mapping[str, Kind], result: ReadResult,
                   optional: Mapping[str, Kind] | None = None, annotation: bool = False) -> pa.Table | None:
    """The file's table, or None once the whole file is set aside in `result` (with its row count)."""
    result.files.setdefault(str(path), FileCounts(annotation=annotation))
    try:
        table = read_table(path, columns, optional)
    except TableError as error:
        result.reject_file(str(path), error.reason, error.rows)
        return None
    if table.num_rows == 0:
        result.reject_file(str(path), "has no rows (an interrupted export?): remove it or write it again", 0)
        return None
    return table


def table_rows(table: pa.Table) -> Iterator[tuple[int, dict[str, Any], list[str]]]:
    """(row, values, columns whose text is not valid UTF-8) for each row. Such a cell spoils only
    its own row; converting the whole table at once would stop at it, naming no row or column."""
    try:
        rows = table.to_pylist()
    except UnicodeDecodeError:
        rows = None
    if rows is not None:
        yield from ((row, values, []) for row, values in enumerate(rows))
        return
    for row in range(table.num_rows):
        values, bad = _row_values(table.slice(row, 1))
        yield row, values, bad


def utf8_problem(columns: list[str]) -> str:
    return f"column(s) {columns} hold text that is not valid UTF-8: re-encode the file as UTF-8"


def _row_values(one: pa.Table) -> tuple[dict[str, Any], list[str]]:
    values, bad = {}, []
    for name in one.column_names:
        try:
            values[name] = one.column(name).to_pylist()[0]
        except UnicodeDecodeError:
            values[name] = "<not valid UTF-8>"
            bad.append(name)
    return values, bad


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
