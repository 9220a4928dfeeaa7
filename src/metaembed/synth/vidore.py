"""Writes the ViDoRe-style page sets: a training set in the colpali train-set columns, a v1 set in
both its QA and BEIR layouts, and a v2 BEIR set with graded float scores, several relevant pages
per query, and a `language` column."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from metaembed.data import templates as t
from metaembed.data.tables import IMAGE_TYPE, write_table
from metaembed.synth.pages import Page, render_page, sample_documents
from metaembed.synth.params import DataParams
from metaembed.synth.render import png
from metaembed.synth.seeding import item_rng

SOURCE = "synthetic_reports"
MODEL = "metaembed-synth"
TRAIN_SET, V1_QA, V1_BEIR, V2_BEIR = ("colpali_train_set", "synth_reports_test_subsampled",
                                      "synth_reports_test_subsampled_beir", "synth_reports_v2")
V1_QUERY_RATE, V1_DUPLICATE_RATE, V2_FRENCH_RATE = 0.75, 0.05, 0.25


@dataclass
class PageQuery:
    text: str
    language: str
    scores: dict[int, float] = field(default_factory=dict)  # page index -> relevance


def page_query(rng: np.random.Generator, page: Page, language: str = "en", kind: str | None = None) -> str:
    """A question only one page answers: a report title plus one of the page's figures or words."""
    kind = kind or ("figure", "word")[int(rng.integers(2))]
    region = page.regions[int(rng.integers(len(page.regions)))]
    colour, shape = region.colour, region.shape
    if language == "fr":
        colour, shape = t.FRENCH[colour], t.FRENCH[shape]
    return t.PAGE_QUERIES[language][kind].format(doc=page.doc, colour=colour, shape=shape, word=region.word)


def write_vidore(root: Path, params: DataParams, progress: Iterator[int] | None = None) -> dict[str, dict]:
    pages_params = params.pages
    taken: set[str] = set()
    splits = {}
    for split, count in (("train", pages_params.train_docs), ("v1", pages_params.eval_docs),
                         ("v2", pages_params.eval_docs)):
        rng = item_rng(params.seed, "vidore-docs", split)
        splits[split] = sample_documents(rng, count, pages_params, params.scenes, taken)
    images = {}
    for split, documents in splits.items():
        for document in documents:
            for page in document:
                images[(split, page.filename)] = png(render_page(page, pages_params.width, pages_params.height))
            if progress is not None:
                next(progress, None)
    splits = {split: [page for document in documents for page in document] for split, documents in splits.items()}
    info = {TRAIN_SET: _write_train(root / TRAIN_SET, splits["train"], images, params.seed,
                                    pages_params.document_query_rate)}
    info.update(_write_v1(root, splits["v1"], images, params.seed))
    info[V2_BEIR] = _write_v2(root / V2_BEIR, splits["v2"], images, params.seed)
    return info


def _image(images: dict, split: str, page: Page) -> dict:
    return {"bytes": images[(split, page.filename)], "path": None}


def _write_train(folder: Path, pages: list[Page], images: dict, seed: int, document_rate: float) -> dict:
    rows = []
    for index, page in enumerate(pages):
        rng = item_rng(seed, "vidore-train", index)
        kinds = ("figure", "word")[: 1 + int(rng.integers(2))]
        # Drawn apart from the rng above, so that a rate of 0 writes exactly the rows it always did.
        if document_rate and item_rng(seed, "vidore-train-document", index).random() < document_rate:
            kinds += ("document",)
        for kind in kinds:
            rows.append({"query": page_query(rng, page, kind=kind), "image": _image(images, "train", page),
                         "image_filename": f"{SOURCE}/{page.filename}", "answer": f"page {page.number}",
                         "source": SOURCE, "options": None, "page": str(page.number), "model": MODEL,
                         "prompt": "", "answer_type": "page"})
    schema = pa.schema([("query", pa.string()), ("image", IMAGE_TYPE), ("image_filename", pa.string()),
                        ("answer", pa.string()), ("source", pa.string()), ("options", pa.string()),
                        ("page", pa.string()), ("model", pa.string()), ("prompt", pa.string()),
                        ("answer_type", pa.string())])
    write_table(pa.Table.from_pylist(rows, schema), folder / "data" / "train-00000-of-00001.parquet", ("image",))
    return {"layout": "colpali_train", "rows": len(rows), "pages": len(pages)}


def _write_v1(root: Path, pages: list[Page], images: dict, seed: int) -> dict[str, dict]:
    rows, queries, qrels = [], {}, []
    for index, page in enumerate(pages):
        rng = item_rng(seed, "vidore-v1", index)
        text = page_query(rng, page) if rng.random() < V1_QUERY_RATE else None
        copies = 2 if text is not None and rng.random() < V1_DUPLICATE_RATE else 1
        for _ in range(copies):  # real v1 sets repeat some rows; readers deduplicate by text
            rows.append({"query": text, "image": _image(images, "v1", page), "image_filename": page.filename,
                         "answer": f"page {page.number}", "page": str(page.number), "model": MODEL,
                         "prompt": "", "source": SOURCE})
        if text is not None and text not in queries:
            queries[text] = len(queries)
            qrels.append({"query-id": queries[text], "corpus-id": index, "score": 1})
    qa_schema = pa.schema([("query", pa.string()), ("image", IMAGE_TYPE), ("image_filename", pa.string()),
                           ("answer", pa.string()), ("page", pa.string()), ("model", pa.string()),
                           ("prompt", pa.string()), ("source", pa.string())])
    write_table(pa.Table.from_pylist(rows, qa_schema), root / V1_QA / "data" / "test-00000-of-00001.parquet",
                ("image",))
    (root / V1_QA / "README.md").write_text(_qa_card())
    corpus = [{"corpus-id": i, "image": _image(images, "v1", p)} for i, p in enumerate(pages)]
    query_rows = [{"query-id": qid, "query": text} for text, qid in queries.items()]
    _write_beir(root / V1_BEIR, corpus, query_rows, qrels, pa.int64(), with_language=False)
    info = {"queries": len(queries), "corpus": len(pages), "qrels": qrels, "n_corpus": len(pages)}
    return {V1_QA: {"layout": "vidore_v1_qa", "rows": len(rows), **info},
            V1_BEIR: {"layout": "beir", "score_type": "int64", **info}}


def _write_v2(folder: Path, pages: list[Page], images: dict, seed: int) -> dict:
    by_doc: dict[str, list[int]] = {}
    for index, page in enumerate(pages):
        by_doc.setdefault(page.doc, []).append(index)
    queries: list[PageQuery] = []
    for index, page in enumerate(pages):
        rng = item_rng(seed, "vidore-v2", index)
        # The target page is fully relevant, the rest of its report partly (graded, as in v2).
        scores = {other: (2.0 if other == index else 1.0) for other in by_doc[page.doc]}
        queries.append(PageQuery(page_query(rng, page), "en", scores))
        if rng.random() < V2_FRENCH_RATE:
            queries.append(PageQuery(page_query(rng, page, "fr"), "fr", scores))
        if page.number == 1:
            whole = {other: 1.0 for other in by_doc[page.doc]}
            queries.append(PageQuery(page_query(rng, page, kind="document"), "en", whole))
    corpus = [{"corpus-id": i, "image": _image(images, "v2", p), "doc-id": p.doc,
               "page_number_in_doc": p.number} for i, p in enumerate(pages)]
    query_rows = [{"query-id": i, "query": q.text, "language": q.language} for i, q in enumerate(queries)]
    qrels = [{"query-id": i, "corpus-id": c, "score": s} for i, q in enumerate(queries) for c, s in q.scores.items()]
    _write_beir(folder, corpus, query_rows, qrels, pa.float64(), with_language=True)
    return {"layout": "beir", "score_type": "float64", "queries": len(queries), "corpus": len(pages),
            "qrels": qrels, "n_corpus": len(pages)}


def _write_beir(folder: Path, corpus: list[dict], queries: list[dict], qrels: list[dict], score_type: pa.DataType,
                with_language: bool) -> None:
    corpus_fields = [("corpus-id", pa.int64()), ("image", IMAGE_TYPE)]
    if corpus and "doc-id" in corpus[0]:
        corpus_fields += [("doc-id", pa.string()), ("page_number_in_doc", pa.int64())]
    query_fields = [("query-id", pa.int64()), ("query", pa.string())] + ([("language", pa.string())]
                                                                        if with_language else [])
    qrel_fields = [("query-id", pa.int64()), ("corpus-id", pa.int64()), ("score", score_type)]
    name = "test-00000-of-00001.parquet"
    write_table(pa.Table.from_pylist(corpus, pa.schema(corpus_fields)), folder / "corpus" / name, ("image",))
    write_table(pa.Table.from_pylist(queries, pa.schema(query_fields)), folder / "queries" / name)
    write_table(pa.Table.from_pylist(qrels, pa.schema(qrel_fields)), folder / "qrels" / name)
    (folder / "README.md").write_text(_beir_card())


def _beir_card() -> str:
    configs = "\n".join(f"  - config_name: {c}\n    data_files:\n      - split: test\n        path: {c}/test-*"
                        for c in ("corpus", "queries", "qrels"))
    return f"---\nconfigs:\n{configs}\n---\n\nSynthetic report pages in the ViDoRe BEIR layout (metaembed).\n"


def _qa_card() -> str:
    return ("---\nconfigs:\n  - config_name: default\n    data_files:\n      - split: test\n"
            "        path: data/test-*\n---\n\nSynthetic report pages in the ViDoRe v1 QA layout (metaembed).\n")
