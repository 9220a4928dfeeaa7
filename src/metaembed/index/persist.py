"""The index folder on disk: atomic replacement, the manifest, and the checks made on load.

    <folder>/manifest.json      format version, dims, dtype, counts, first stage, meta, times, and
                                {"bytes", "sha256"} of every other file; written last
    <folder>/codes.npy          [N, R_c, width] rerank vector codes (see codecs.py)
    <folder>/scales.npy         [N, R_c] float32, int8 indexes only
    <folder>/mask.npy           [N, R_c] bool, True where the vector is real
    <folder>/tombstones.npy     [N] bool, True where the row was removed
    <folder>/ids.json           the N row ids, removed rows included
    <folder>/first_stage.faiss  faiss.write_index of the first stage, when there is one
    <folder>/<sidecar>          any extra text files the caller saves with the index (listed too)

A save writes everything into a hidden temporary sibling, fsyncs it, and renames it into place;
an existing folder is moved aside only once the new one is complete, then deleted. So a save
that fails or is killed never leaves a partial folder at the target path, and the old folder
stays loadable. (Linux has no portable atomic swap of two directories: a kill between the two
renames leaves the old index in `.<name>.old-*` and no folder at the path; a stale
`.<name>.tmp-*` after a kill is never read and may be deleted.)

The .npy files memory-map on load. Sizes and shapes are always checked; sha256 reads every byte,
so it runs when `verify=True`, or by default (verify=None) only while the files total at most
VERIFY_AUTO_BYTES: a 100k x 64 x 128 bfloat16 index is 1.6 GB, which would take seconds to hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "metaembed-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CODES = "codes.npy"
SCALES = "scales.npy"
MASK = "mask.npy"
TOMBSTONES = "tombstones.npy"
IDS = "ids.json"
FIRST_STAGE = "first_stage.faiss"
INDEX_FILES = frozenset({MANIFEST, CODES, SCALES, MASK, TOMBSTONES, IDS, FIRST_STAGE})
VERIFY_AUTO_BYTES = 256 * 2**20
_READ_CHUNK = 8 * 2**20
_REBUILD = "rebuild the index (MultiVectorIndex.build(...).save(folder)) or copy the folder again"


class IndexFolderError(ValueError):
    """The folder is not a complete, consistent index; the message names the file at fault."""


@contextlib.contextmanager
def atomic_folder(folder: Path) -> Iterator[Path]:
    """Yields an empty temporary sibling to fill; on success it replaces `folder`."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    try:
        yield scratch
        _fsync_dir(scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    old = None
    if folder.exists():
        old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(folder, old)
    os.rename(scratch, folder)
    _fsync_dir(folder.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_array(path: Path, pieces: Iterable[np.ndarray], shape: tuple[int, ...], dtype: np.dtype) -> None:
    """A .npy of `shape` filled piece by piece along axis 0, so no whole copy is held in memory."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    row = 0
    for piece in pieces:
        out[row:row + len(piece)] = piece
        row += len(piece)
    if row != shape[0]:
        raise RuntimeError(f"{path.name}: wrote {row} rows, expected {shape[0]}")
    out.flush()
    del out
    _fsync_file(path)


def check_sidecars(sidecars: dict[str, str] | None) -> dict[str, str]:
    """Extra text files saved beside the index: plain names that are not the index's own files."""
    sidecars = dict(sidecars or {})
    for name, text in sidecars.items():
        if not isinstance(name, str) or not isinstance(text, str):
            raise TypeError(f"sidecars must map file names to str content, got {name!r}: {type(text).__name__}")
        if name in INDEX_FILES or name != Path(name).name or name.startswith("."):
            raise ValueError(f"sidecar name {name!r} must be a plain file name (no folder, not hidden) "
                             f"other than the index's own files {sorted(INDEX_FILES)}")
    return sidecars


def write_text(path: Path, text: str) -> None:
    path.write_text(text)
    _fsync_file(path)


def file_record(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": sha256(path)}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(folder: Path) -> dict[str, Any]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such index folder; build and save an index there first")
    path = folder / MANIFEST
    if not path.is_file():
        raise IndexFolderError(f"{path}: missing, so {folder} is not a complete index; {_REBUILD}")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise IndexFolderError(f"{path}: not valid JSON ({error}); {_REBUILD}") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise IndexFolderError(
            f"{path}: format {manifest.get('format')!r} version {manifest.get('format_version')!r}, "
            f"this code reads {FORMAT!r} version {FORMAT_VERSION}; rebuild the index with this version"
        )
    return manifest


def check_files(folder: Path, manifest: dict[str, Any], verify: bool | None) -> None:
    """Every file the manifest lists exists with its size; and its sha256 when verifying."""
    files: dict[str, dict[str, Any]] = manifest["files"]
    if verify is None:
        verify = sum(record["bytes"] for record in files.values()) <= VERIFY_AUTO_BYTES
    for name, record in files.items():
        path = Path(folder) / name
        if not path.is_file():
            raise IndexFolderError(f"{path}: missing (listed in {MANIFEST}); {_REBUILD}")
        size = path.stat().st_size
        if size != record["bytes"]:
            raise IndexFolderError(
                f"{path}: {size} bytes but {MANIFEST} says {record['bytes']} (torn or replaced); {_REBUILD}"
            )
        if verify and sha256(path) != record["sha256"]:
            raise IndexFolderError(f"{path}: sha256 differs from {MANIFEST} (modified or corrupt); {_REBUILD}")


def open_array(folder: Path, name: str, shape: tuple[int, ...], dtype: np.dtype, mmap: bool) -> np.ndarray:
    """The .npy `name`, memory-mapped copy-on-write (torch needs writable memory; writes never reach
    the file) or read whole; its shape and dtype must be the manifest's."""
    path = Path(folder) / name
    try:
        array = np.load(path, mmap_mode="c" if mmap else None, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise IndexFolderError(f"{path}: unreadable as .npy ({error}); {_REBUILD}") from None
    if array.shape != shape or array.dtype != dtype:
        raise IndexFolderError(
            f"{path}: holds {array.dtype} {array.shape} but {MANIFEST} implies {np.dtype(dtype)} {shape}; {_REBUILD}"
        )
    return array


def mismatch(path: Path, what: str) -> IndexFolderError:
    return IndexFolderError(f"{path}: {what}; {_REBUILD}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # Makes the directory's entries (the new files, the rename) durable; not possible everywhere.
    with contextlib.suppress(OSError):
        _fsync_file(path)
