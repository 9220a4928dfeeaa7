"""The evaluation sets to score: from `data/prepared` (the default) or from real-format folders.

An MMEB subset is a list of queries, each with its own candidate list (positive first); a ViDoRe
set is corpus/queries/qrels. ViDoRe v1 ships each set twice, as a QA table (`<name>`) and in the
BEIR layout (`<name>_beir`): same pages, same queries. `distinct_vidore` keeps one of each such
pair so that averages count the content once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from metaembed.data import chance
from metaembed.data.records import EvalQuery, RetrievalSet


@dataclass
class MmebSubset:
    name: str
    meta_task: str
    split: str  # in_distribution | out_of_distribution | unknown
    queries: list[EvalQuery]

    @property
    def chance_p_at_1(self) -> float:
        return chance.precision_at_1([len(q.candidates) for q in self.queries])

    @property
    def has_twins(self) -> bool:
        return any(q.twin_indices for q in self.queries)

    @property
    def chance_twin_accuracy(self) -> float | None:
        counts = [len(q.twin_indices) for q in self.queries if q.twin_indices]
        return chance.twin_accuracy(counts) if counts else None


@dataclass
class VidoreSet:
    name: str
    layout: str  # qa | beir
    data: RetrievalSet

    @property
    def chance_ndcg_at_5(self) -> float:
        qrels = [{"query-id": q, "score": s} for q, docs in self.data.qrels.items() for s in docs.values()]
        return chance.ndcg_at_k(qrels, max(len(self.data.corpus), 1), 5)


@dataclass
class Suite:
    mmeb: list[MmebSubset] = field(default_factory=list)
    vidore: list[VidoreSet] = field(default_factory=list)
    source: str = ""

    def describe(self) -> str:
        queries = sum(len(s.queries) for s in self.mmeb)
        pages = sum(len(v.data.corpus) for v in self.vidore)
        return (f"{len(self.mmeb)} MMEB subsets ({queries} queries), {len(self.vidore)} ViDoRe sets "
                f"({pages} pages) from {self.source}")


def load_prepared(prepared: str | Path) -> Suite:
    """Every evaluation set listed in `<prepared>/eval/index.json`."""
    from metaembed.data.manifests import (
        EVAL_DIR,
        INDEX_FILE,
        load_index,
        read_mmeb_eval,
        read_vidore_eval,
    )

    prepared = Path(prepared)
    if not (prepared / EVAL_DIR / INDEX_FILE).is_file():
        raise FileNotFoundError(f"{prepared / EVAL_DIR / INDEX_FILE} not found: run `metaembed data prepare` "
                                "(or `dvc repro prepare`) first, or point prepare.out_dir at a prepared folder")
    index = load_index(prepared)
    suite = Suite(source=str(prepared))
    for name, info in sorted(index.get("mmeb", {}).items()):
        suite.mmeb.append(MmebSubset(name, info.get("meta_task", "unknown"), info.get("split", "unknown"),
                                     read_mmeb_eval(prepared, name)))
    for name, info in sorted(index.get("vidore", {}).items()):
        suite.vidore.append(VidoreSet(name, info.get("layout", "beir"), read_vidore_eval(prepared, name)))
    _check_not_empty(suite)
    return suite


def load_folders(mmeb_roots: list[str | Path] = (), vidore_folders: list[str | Path] = (),
                 image_root: str | Path | None = None) -> Suite:
    """Real-format folders, read by the same readers `prepare` uses (bad rows raise DataError).

    mmeb_roots: MMEB-eval roots (`<root>/<Subset>/test-*.parquet`); image_root defaults to each root.
    vidore_folders: ViDoRe sets in the v1 QA or the BEIR layout.
    """
    from metaembed.data.catalog import Catalog
    from metaembed.data.readers import layout, read_mmeb_eval, read_vidore

    sources = [str(p) for p in [*mmeb_roots, *vidore_folders]]
    suite = Suite(source=", ".join(sources))
    for root in mmeb_roots:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: MMEB-eval folder not found")
        subsets = read_mmeb_eval(root, image_root)
        if not subsets:
            raise ValueError(f"{root}: no MMEB-eval subsets (expected <root>/<Subset>/test-*.parquet)")
        catalog = Catalog(root)
        for name, queries in sorted(subsets.items()):
            info = catalog.eval_info(name)
            suite.mmeb.append(MmebSubset(name, info["meta_task"], info["split"], queries))
    for folder in vidore_folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: ViDoRe folder not found")
        suite.vidore.append(VidoreSet(folder.name, layout(folder) or "unknown", read_vidore(folder)))
    _check_not_empty(suite)
    return suite


def _check_not_empty(suite: Suite) -> None:
    if not suite.mmeb and not suite.vidore:
        raise ValueError(f"{suite.source}: no evaluation sets found")
    for subset in suite.mmeb:
        if not subset.queries:
            raise ValueError(f"{suite.source}: MMEB subset {subset.name} has no queries")
    for vidore in suite.vidore:
        if not vidore.data.queries or not vidore.data.corpus:
            raise ValueError(f"{suite.source}: ViDoRe set {vidore.name} has no queries or no pages")


def distinct_vidore(sets: list[VidoreSet]) -> tuple[list[VidoreSet], dict[str, str]]:
    """Sets to average over, and {left-out set: the set that stands for it}.

    A QA set `X` and a BEIR set `X_beir` with the same query texts are one benchmark; the BEIR
    copy stays (it is the layout ViDoRe maintains). Same name but other queries: both count.
    """
    by_name = {s.name: s for s in sets}
    duplicates = {}
    for candidate in sets:
        if candidate.layout != "qa":
            continue
        twin = by_name.get(f"{candidate.name}_beir")
        if twin is not None and set(twin.data.queries.values()) == set(candidate.data.queries.values()):
            duplicates[candidate.name] = twin.name
    return [s for s in sets if s.name not in duplicates], duplicates
