"""The `prepare` stage: check every row of `data/raw`, then write `data/prepared` (see manifests.py).

Bad rows stop the stage with their file, row and problem; with `prepare.on_bad_rows: quarantine`
they go to `quarantine/bad_rows.jsonl` and are counted in counts.json instead. Folders that no
reader recognises are listed in counts.json as ignored, never skipped without a word.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from metaembed.data import chance, manifests, mixture
from metaembed.data.catalog import Catalog
from metaembed.data.params import PrepareParams
from metaembed.data.problems import DataError, Problem, ReadResult
from metaembed.data.readers import mmeb, vidore
from metaembed.data.readers.common import ImageChecker

KNOWN_FILES = {"README.md", "synth.json", ".gitignore"}


@dataclass
class Job:
    collection: str  # mmeb-train | mmeb-eval | vidore
    name: str
    role: str  # train | eval
    scan: Callable[[], ReadResult]
    layout: str


@dataclass
class PrepareReport:
    counts: dict[str, dict] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    quarantined_rows: int = 0
    ignored: list[str] = field(default_factory=list)


def discover(raw: Path, checker: ImageChecker) -> tuple[list[Job], list[str]]:
    """Every subset or set under `raw` with the reader that fits it, and what fits none."""
    jobs, ignored = [], []
    for entry in sorted(raw.iterdir()):
        if entry.name == "mmeb-train" and entry.is_dir():
            jobs += [_mmeb_job(entry, subset, files, checker, "train") for subset, files in
                     mmeb.subsets(entry, mmeb.TRAIN_PATTERNS).items()]
        elif entry.name == "mmeb-eval" and entry.is_dir():
            jobs += [_mmeb_job(entry, subset, files, checker, "eval") for subset, files in
                     mmeb.subsets(entry, (mmeb.EVAL_PATTERN,)).items()]
        elif entry.name == "vidore" and entry.is_dir():
            found, skipped = _vidore_jobs(entry, checker)
            jobs += found
            ignored += skipped
        elif entry.name not in KNOWN_FILES and not entry.name.startswith("."):
            ignored.append(str(entry))
    return jobs, ignored


def _mmeb_job(root: Path, subset: str, files: list[Path], checker: ImageChecker, role: str) -> Job:
    scan_file = mmeb.scan_train_file if role == "train" else mmeb.scan_eval_file

    def scan() -> ReadResult:
        merged = ReadResult()
        for path in files:
            merged.merge(scan_file(path, subset, root, checker))
        return merged

    return Job(f"mmeb-{role}", subset, role, scan, f"mmeb_{role}")


def _vidore_jobs(root: Path, checker: ImageChecker) -> tuple[list[Job], list[str]]:
    jobs, ignored = [], []
    scanners = {"colpali_train": vidore.scan_colpali_train, "qa": vidore.scan_vidore_qa,
                "beir": vidore.scan_vidore_beir}
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        kind = vidore.layout(folder)
        if kind is None:
            ignored.append(str(folder))
            continue
        scan = scanners[kind]
        role = "train" if kind == "colpali_train" else "eval"
        jobs.append(Job("vidore", folder.name, role, lambda s=scan, f=folder: s(f, checker.mode), kind))
    return jobs, ignored


def run_prepare(raw_dir: str | Path, params: PrepareParams, progress: bool = True) -> PrepareReport:
    """Check `raw_dir` (`ParamsRoot.raw_dir`) row by row and write `params.out_dir`."""
    raw, out = Path(raw_dir), Path(params.out_dir)
    if not raw.is_dir():
        raise FileNotFoundError(f"{raw}: raw data folder not found; run `metaembed data ensure` "
                                f"(pulls or regenerates what data.dvc pins)")
    jobs, ignored = discover(raw, ImageChecker(params.check_images))
    results = _scan_all(jobs, progress)
    report = PrepareReport(ignored=ignored)
    report.problems = [problem for result in results.values() for problem in result.problems]
    if report.problems and params.on_bad_rows == "fail":
        raise DataError(report.problems, params.max_problems_shown)
    staging = out.parent / f".{out.name}.prepare-tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _write_all(staging, raw, jobs, results, Catalog(raw), params, report)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return report


def _scan_all(jobs: list[Job], progress: bool) -> dict[str, ReadResult]:
    from tqdm import tqdm

    results = {}
    for job in tqdm(jobs, desc="prepare: checking", unit="set", disable=not progress):
        results[f"{job.collection}/{job.name}"] = job.scan()
    return results


def _write_all(out: Path, raw: Path, jobs: list[Job], results: dict[str, ReadResult], catalog: Catalog,
               params: PrepareParams, report: PrepareReport) -> None:
    train_sources, index = {}, {"mmeb": {}, "vidore": {}}
    for job in jobs:
        result = results[f"{job.collection}/{job.name}"]
        counts = report.counts[f"{job.collection}/{job.name}"] = _counts(job, result, raw)
        report.quarantined_rows += result.quarantined
        if job.role == "train":
            if result.records:
                manifests.write_train(out, job.name, result.records)
                train_sources[job.name] = {"rows": len(result.records), "collection": job.collection,
                                           **_train_info(job, catalog)}
            else:
                counts["note"] = "no usable rows: left out of training"
        elif not _usable(result):
            counts["note"] = "no usable rows: left out of the evaluation"
        elif job.layout == "mmeb_eval":
            index["mmeb"][job.name] = _mmeb_eval_entry(out, job, result, catalog)
        else:
            index["vidore"][job.name] = _vidore_eval_entry(out, job, result)
    _write_mixture(out, train_sources, params)
    manifests.write_json(out / manifests.EVAL_DIR / manifests.INDEX_FILE, index)
    _write_quarantine(out, report)
    manifests.write_json(out / manifests.COUNTS_FILE, {
        "sources": report.counts, "quarantined_rows": report.quarantined_rows, "ignored": report.ignored,
        "on_bad_rows": params.on_bad_rows})


def _usable(result: ReadResult) -> bool:
    if not result.records:
        return False
    first = result.records[0]
    return bool(first.queries and first.corpus) if hasattr(first, "corpus") else True


def _counts(job: Job, result: ReadResult, raw: Path) -> dict:
    """Rows read, kept and quarantined for the set and for each of its files (paths relative to
    `raw`, so that counts.json does not change when the folders move)."""
    files = {Path(file).relative_to(raw).as_posix(): counts.as_dict() for file, counts in result.files.items()}
    return {"collection": job.collection, "layout": job.layout, "role": job.role, "rows_read": result.rows_read,
            "kept": result.kept, "quarantined_rows": result.quarantined, "files": files}


def _train_info(job: Job, catalog: Catalog) -> dict:
    if job.collection == "vidore":
        return {"meta_task": "visual_document_retrieval", "level": None}
    return catalog.train_info(job.name)


def _mmeb_eval_entry(out: Path, job: Job, result: ReadResult, catalog: Catalog) -> dict:
    path = manifests.write_mmeb_eval(out, job.name, result.records)
    twins = [len(q.twin_indices) for q in result.records if q.twin_indices is not None]
    entry = {"file": path.relative_to(out).as_posix(), "queries": len(result.records), "metric": "precision_at_1",
             "max_candidates": max((len(q.candidates) for q in result.records), default=0),
             "chance_p_at_1": chance.precision_at_1([len(q.candidates) for q in result.records]),
             **catalog.eval_info(job.name)}
    if twins:
        entry["chance_twin_accuracy"] = chance.twin_accuracy(twins)
    return entry


def _vidore_eval_entry(out: Path, job: Job, result: ReadResult) -> dict:
    data = result.records[0]
    folder = manifests.write_vidore_eval(out, data)
    qrels = [{"query-id": q, "score": s} for q, docs in data.qrels.items() for s in docs.values()]
    return {"dir": folder.relative_to(out).as_posix(), "layout": job.layout, "metric": "ndcg_at_5",
            "queries": len(data.queries), "corpus": len(data.corpus),
            "chance_ndcg_at_5": chance.ndcg_at_k(qrels, max(len(data.corpus), 1), 5)}


def _write_mixture(out: Path, sources: dict[str, dict], params: PrepareParams) -> None:
    weights = mixture.base_weights({name: info["rows"] for name, info in sources.items()}, params)
    for name, weight in weights.items():
        sources[name]["weight"] = weight
        sources[name]["file"] = f"{name}.parquet"
    phases = mixture.phases(sources, params) if sources else []
    manifests.write_json(out / manifests.TRAIN_DIR / manifests.MIXTURE_FILE, {"sources": sources, "phases": phases})


def _write_quarantine(out: Path, report: PrepareReport) -> None:
    if not report.problems:
        return
    path = out / "quarantine" / "bad_rows.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"file": p.file, "row": p.row, "problem": p.message, "values": p.values}, sort_keys=True,
                        default=str) for p in report.problems]
    path.write_text("\n".join(lines) + "\n")
