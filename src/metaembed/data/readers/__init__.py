"""Readers for real-format folders: MMEB-train, MMEB-eval, ViDoRe (colpali train, v1 QA, BEIR).

`scan_*` functions return records plus the problems of bad rows (for `prepare`); `read_*` return
records and raise `DataError` naming file, row and problem if any row is bad.
"""

from __future__ import annotations

from pathlib import Path

from metaembed.data.problems import raise_if_any
from metaembed.data.readers.common import CheckImages
from metaembed.data.readers.mmeb import scan_mmeb_eval, scan_mmeb_train
from metaembed.data.readers.vidore import layout, scan_colpali_train, scan_vidore_beir, scan_vidore_qa
from metaembed.data.records import EvalQuery, RetrievalSet, TrainPair

__all__ = ["read_mmeb_train", "read_mmeb_eval", "read_vidore", "read_colpali_train", "scan_mmeb_train",
           "scan_mmeb_eval", "scan_vidore_qa", "scan_vidore_beir", "scan_colpali_train", "layout"]


def read_mmeb_train(root: str | Path, image_root: str | Path | None = None,
                    check_images: CheckImages = "exists") -> dict[str, list[TrainPair]]:
    results = scan_mmeb_train(root, image_root, check_images)
    for result in results.values():
        raise_if_any(result)
    return {subset: result.records for subset, result in results.items()}


def read_mmeb_eval(root: str | Path, image_root: str | Path | None = None,
                   check_images: CheckImages = "exists") -> dict[str, list[EvalQuery]]:
    results = scan_mmeb_eval(root, image_root, check_images)
    for result in results.values():
        raise_if_any(result)
    return {subset: result.records for subset, result in results.items()}


def read_vidore(folder: str | Path, check_images: CheckImages = "exists") -> RetrievalSet:
    """A ViDoRe evaluation set from a local folder in the v1 QA or the BEIR layout."""
    kind = layout(folder)
    if kind not in ("qa", "beir"):
        raise ValueError(f"{folder}: not a ViDoRe evaluation folder (expected corpus/, queries/, qrels/ "
                         f"or data/test-*.parquet)")
    result = scan_vidore_beir(folder, check_images) if kind == "beir" else scan_vidore_qa(folder, check_images)
    raise_if_any(result)
    return result.records[0]


def read_colpali_train(folder: str | Path, check_images: CheckImages = "exists") -> list[TrainPair]:
    result = scan_colpali_train(folder, check_images)
    raise_if_any(result)
    return result.records
