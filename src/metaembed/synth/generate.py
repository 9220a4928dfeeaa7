"""`metaembed data synth`: the whole synthetic benchmark, written atomically into `data/raw`.

Layout (each part readable by the matching reader in `metaembed.data.readers`):
    mmeb-train/<Subset>_<level>/original-00000-of-00001.parquet   images in mmeb-train/images/<Subset>_<level>/
    mmeb-eval/<Subset>/test-00000-of-00001.parquet                 images in mmeb-eval/images/<Subset>/
    vidore/colpali_train_set/data/train-00000-of-00001.parquet     images embedded
    vidore/synth_reports_test_subsampled/ (v1 QA), ..._beir/ (v1 BEIR), synth_reports_v2/ (v2 BEIR)
    synth.json   machine-readable summary (levels, meta-tasks, chance levels), README.md   the card
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metaembed.data import chance
from metaembed.synth.card import render_card
from metaembed.synth.mmeb import write_eval_subset, write_train_subset
from metaembed.synth.params import DataParams
from metaembed.synth.scene_tasks import META_TASKS, TASKS, Level
from metaembed.synth.scenes import World, pick_heldout
from metaembed.synth.vidore import write_vidore

SUMMARY_FILE = "synth.json"


def generate(params: DataParams, out_dir: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Write the benchmark into `out_dir` (default `params.out_dir`), replacing it only when complete."""
    out = Path(out_dir if out_dir is not None else params.out_dir)
    staging = out.parent / f".{out.name}.synth-tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    heldout = pick_heldout(params.scenes, params.seed)
    with _progress_bar(_total_units(params), progress) as bar:
        ticks = _ticks(bar)
        summary = {
            "params": params.model_dump(mode="json"),
            "heldout_combos": sorted(heldout),
            "mmeb_train": _train(staging / "mmeb-train", params, heldout, ticks),
            "mmeb_eval": _eval(staging / "mmeb-eval", params, heldout, ticks),
            "vidore": _vidore(staging / "vidore", params, ticks),
        }
    (staging / SUMMARY_FILE).write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    (staging / "README.md").write_text(render_card(summary))
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return summary


def _train(root: Path, params: DataParams, heldout: frozenset, ticks: Iterator[int]) -> dict[str, dict]:
    world = World(params.scenes, heldout, "train")
    info = {}
    for level in params.train.curriculum:
        for task_name in params.train.subsets:
            subset = f"{task_name}_{level.name}"
            spec = Level(level.min_objects, level.max_objects, level.hard_negatives)
            rows = write_train_subset(root, subset, TASKS[task_name](world), spec, params.train.rows_per_subset,
                                      params.seed, ticks)
            info[subset] = {"task": task_name, "meta_task": META_TASKS[task_name], "level": level.name,
                            "rows": rows, "hard_negatives": level.hard_negatives}
    return info


def _eval(root: Path, params: DataParams, heldout: frozenset, ticks: Iterator[int]) -> dict[str, dict]:
    evals = params.eval
    info = {}
    full = Level(None, None, True)
    for split, names in (("in_distribution", evals.in_distribution), ("out_of_distribution",
                                                                        evals.out_of_distribution)):
        world = World(params.scenes, heldout, "train" if split == "in_distribution" else "ood")
        for name in names:
            rows = write_eval_subset(root, name, TASKS[name](world), full, evals.queries_per_subset,
                                     evals.candidates, evals.twins_per_query, params.seed, ticks)
            twins = [len(row.twin_indices) for row in rows]
            info[name] = {"meta_task": META_TASKS[name], "split": split, "queries": len(rows),
                          "candidates": evals.candidates, "mean_twins": sum(twins) / len(twins),
                          "chance_p_at_1": chance.precision_at_1([len(row.candidates) for row in rows]),
                          "chance_twin_accuracy": chance.twin_accuracy(twins)}
    return info


def _vidore(root: Path, params: DataParams, ticks: Iterator[int]) -> dict[str, dict]:
    info = write_vidore(root, params, ticks)
    for entry in info.values():
        qrels = entry.pop("qrels", None)
        n_corpus = entry.pop("n_corpus", None)
        if qrels is not None:
            entry["chance_ndcg_at_5"] = chance.ndcg_at_k(qrels, n_corpus, 5)
            entry["queries_with_several_relevant"] = _several_relevant(qrels)
    return info


def _several_relevant(qrels: list[dict]) -> int:
    counts: dict[int, int] = {}
    for rel in qrels:
        counts[rel["query-id"]] = counts.get(rel["query-id"], 0) + 1
    return sum(1 for count in counts.values() if count > 1)


def _total_units(params: DataParams) -> int:
    train = len(params.train.curriculum) * len(params.train.subsets) * params.train.rows_per_subset
    evals = (len(params.eval.in_distribution) + len(params.eval.out_of_distribution)) * params.eval.queries_per_subset
    documents = params.pages.train_docs + 2 * params.pages.eval_docs
    return train + evals + documents


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="synth", unit="row", disable=not enabled, mininterval=0.5)


def _ticks(bar) -> Iterator[int]:
    count = 0
    while True:
        bar.update(1)
        count += 1
        yield count
