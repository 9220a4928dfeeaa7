"""Writes the MMEB-style subsets: training pairs with one hard negative, and evaluation rows with
the positive at index 0 of K candidates, in the real MMEB columns and folder layout."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from metaembed.data.tables import write_table
from metaembed.synth.render import png
from metaembed.synth.scene_tasks import Case, Item, Level, SceneTask
from metaembed.synth.seeding import item_rng

TRAIN_TWINS = 5  # twins drawn per training row; its hard negative is one of them


class ImageSink:
    """Writes item images under `<root>/images/<subset>/` and records the relative path on the item."""

    def __init__(self, root: Path, subset: str) -> None:
        self.root = root
        self.relative = f"images/{subset}"
        (root / self.relative).mkdir(parents=True, exist_ok=True)

    def save(self, item: Item, name: str) -> str:
        if item.draw is None:
            return ""
        if not item.path:
            item.path = f"{self.relative}/{name}.png"
            (self.root / item.path).write_bytes(png(item.draw()))
        return item.path


def write_train_subset(root: Path, subset: str, task: SceneTask, level: Level, rows: int, seed: int,
                       progress: Iterator[int] | None = None) -> int:
    sink = ImageSink(root, subset)
    columns: dict[str, list[str]] = {k: [] for k in ("qry", "qry_image_path", "pos_text", "pos_image_path",
                                                      "neg_text", "neg_image_path")}
    for row in range(rows):
        rng = item_rng(seed, "mmeb-train", subset, row)
        case = task.case(rng, level, TRAIN_TWINS)
        negative = task.negative(rng, case, level.hard_negatives)
        for prefix, item, role in (("qry", case.query, "qry"), ("pos", case.positive, "pos"),
                                   ("neg", negative, "neg")):
            columns["qry" if prefix == "qry" else f"{prefix}_text"].append(item.text)
            columns[f"{prefix}_image_path"].append(sink.save(item, f"{row:06d}_{role}"))
        if progress is not None:
            next(progress, None)
    write_table(pa.table(columns), root / subset / "original-00000-of-00001.parquet")
    return rows


@dataclass
class EvalRow:
    case: Case
    candidates: list[Item]
    twin_indices: list[int]


def write_eval_subset(root: Path, subset: str, task: SceneTask, level: Level, queries: int, candidates: int,
                      twins: int, seed: int, progress: Iterator[int] | None = None) -> list[EvalRow]:
    sink = ImageSink(root, subset)
    cases = []
    for row in range(queries):
        case = task.case(item_rng(seed, "mmeb-eval", subset, row), level, twins)
        sink.save(case.query, f"{row:05d}_qry")
        sink.save(case.positive, f"{row:05d}_pos")
        for index, twin in enumerate(case.twins):
            sink.save(twin, f"{row:05d}_twin{index}")
        cases.append(case)
        if progress is not None:
            next(progress, None)
    pool = [item for case in cases for item in (case.positive, *case.twins)]
    rows = [assemble(task, sink, case, pool, candidates, item_rng(seed, "mmeb-eval-fill", subset, row), row)
            for row, case in enumerate(cases)]
    _write_eval_tables(root / subset, rows)
    return rows


def assemble(task: SceneTask, sink: ImageSink, case: Case, pool: list[Item], k: int, rng: np.random.Generator,
             row: int) -> EvalRow:
    """Positive first, then the twins and failing fillers in a seeded order: K candidates in all."""
    fillers = _fillers(task, sink, case, pool, k - 1 - len(case.twins), rng, row)
    rest = [*case.twins, *fillers]
    order = rng.permutation(len(rest))
    candidates = [case.positive] + [rest[int(i)] for i in order]
    twin_indices = sorted(1 + position for position, i in enumerate(order) if int(i) < len(case.twins))
    return EvalRow(case, candidates, twin_indices)


def _fillers(task: SceneTask, sink: ImageSink, case: Case, pool: list[Item], need: int, rng: np.random.Generator,
             row: int) -> list[Item]:
    """`need` negatives that fail the query, distinct by content where the content space allows."""
    used = {case.positive.key, *(twin.key for twin in case.twins)}
    chosen: list[Item] = []

    def offer(item: Item, allow_repeat: bool = False) -> None:
        if len(chosen) < need and not case.accepts(item.key) and (allow_repeat or item.key not in used):
            used.add(item.key)
            chosen.append(item)

    for item in case.extras:
        offer(item)
    for index in rng.permutation(len(pool)):
        if len(chosen) >= need:
            break
        offer(pool[int(index)])
    for attempt in range(20 * need):
        if len(chosen) >= need:
            break
        offer(task.random_item(rng), allow_repeat=attempt >= 10 * need)
    if len(chosen) < need:
        raise RuntimeError(f"found only {len(chosen)} of {need} negatives for row {row}; lower data.eval.candidates")
    for index, item in enumerate(chosen):  # scene-mates and fresh random items have no file yet
        sink.save(item, f"{row:05d}_fill{index}")
    return chosen


def _write_eval_tables(folder: Path, rows: list[EvalRow]) -> None:
    columns = {
        "qry_text": [row.case.query.text for row in rows],
        "qry_img_path": [row.case.query.path for row in rows],
        "tgt_text": [[item.text for item in row.candidates] for row in rows],
        "tgt_img_path": [[item.path for item in row.candidates] for row in rows],
    }
    write_table(pa.table(columns), folder / "test-00000-of-00001.parquet")
    # Not part of MMEB: which candidates are one-attribute twins, for twin-only accuracy.
    write_table(pa.table({"twin_indices": pa.array([row.twin_indices for row in rows], pa.list_(pa.int32()))}),
                folder / "hard_negatives.parquet")
