"""The sha256 that names "the same model": over a saved folder's relative paths and bytes.

Registration tags a version with it; the index stage and `metaembed index build` record it in
the index's manifest, so search and registration can tell an index of another model. Imports
nothing heavy, so the index stage does not load mlflow to compute it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def folder_sha256(folder: Path) -> str:
    """sha256 over the folder's relative file paths and contents, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()
