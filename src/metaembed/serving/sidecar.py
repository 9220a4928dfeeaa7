"""`corpus.json`, the sidecar saved with an index: what each candidate shows in a result, and
what was left out of the corpus.

Light (json only), so the index stage writes it without importing the registry loader that
`serving.build` needs for `metaembed index build`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

SIDECAR = "corpus.json"
SIDECAR_FORMAT = 1


def sidecar_text(layout: str, corpus_path: Path, display: Mapping[str, str],
                 skipped: Sequence[Mapping[str, str]] = (), ignored: Sequence[str] = ()) -> str:
    return json.dumps({
        "format": SIDECAR_FORMAT,
        "layout": layout,
        "corpus_path": str(Path(corpus_path).resolve()),
        "display": dict(display),
        "skipped": [dict(item) for item in skipped],
        "ignored": list(ignored),
    }, ensure_ascii=False, indent=1)


def read_sidecar(folder: str | Path) -> dict:
    """The sidecar of a built index; an empty one for an index saved without it (library use)."""
    from metaembed.index.persist import IndexFolderError

    path = Path(folder) / SIDECAR
    if not path.is_file():
        return {"format": SIDECAR_FORMAT, "display": {}, "skipped": [], "ignored": []}
    content = json.loads(path.read_text())
    if content.get("format") != SIDECAR_FORMAT:
        raise IndexFolderError(f"{path}: sidecar format {content.get('format')!r}, this code reads "
                               f"{SIDECAR_FORMAT}; rebuild the index with `metaembed index build`")
    return content
