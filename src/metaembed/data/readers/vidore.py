"""ViDoRe folders: the colpali training set, v1 QA sets, and BEIR sets (v1 `_beir` and v2).

    colpali train: data/train-*.parquet   query, image, image_filename, answer, source, ...
    v1 QA:         data/test-*.parquet    query, image, image_filename, ...; a null query marks a
                   corpus-only page; queries are deduplicated by text; relevant page = image_filename
    BEIR:          corpus/*.parquet (corpus-id, image), queries/*.parquet (query-id, query[, language]),
                   qrels/*.parquet (query-id, corpus-id, score: int or float)
Images are `datasets` Image cells: embedded bytes, or a path relative to the folder.
"""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa

from metaembed.data.problems import Problem, ReadResult
from metaembed.data.readers.common import (CheckImages, ImageChecker, parquet_files, read_or_reject, row_values,
                                           struct_image, table_rows, text, utf8_problem)
from metaembed.data.records import ImageRef, RetrievalSet, Side, TrainPair
from metaembed.data.tables import ID, IMAGE, NUMBER, TEXT, Kind

COLPALI_COLUMNS = {"query": TEXT, "image": IMAGE}
QA_COLUMNS = {"query": TEXT, "image": IMAGE, "image_filename": TEXT}
BEIR_COLUMNS = {"corpus": {"corpus-id": ID, "image": IMAGE}, "queries": {"query-id": ID, "query": TEXT},
                "qrels": {"query-id": ID, "corpus-id": ID, "score": NUMBER}}
BEIR_OPTIONAL = {"queries": {"language": TEXT}}


def layout(folder: str | Path) -> str | None:
    """Which ViDoRe layout a folder holds: 'beir', 'qa', 'colpali_train', or None."""
    folder = Path(folder)
    if all((folder / config).is_dir() for config in BEIR_COLUMNS):
        return "beir"
    if parquet_files(folder / "data", "test-*.parquet"):
        return "qa"
    if parquet_files(folder / "data", "train-*.parquet"):
        return "colpali_train"
    return None


def _tables(files: list[Path], columns: dict[str, Kind], result: ReadResult,
            optional: dict[str, Kind] | None = None) -> list[tuple[Path, pa.Table]]:
    tables = [(path, read_or_reject(path, columns, result, optional)) for path in files]
    return [(path, table) for path, table in tables if table is not None]


def _image(value, folder: Path, checker: ImageChecker) -> tuple[ImageRef | None, str | None]:
    try:
        image = struct_image(value, folder)
    except TypeError as error:
        return None, str(error)
    if image is None:
        return None, "image is missing"
    return image, checker.problem(image)


def scan_colpali_train(folder: str | Path, check_images: CheckImages = "exists",
                       name: str | None = None) -> ReadResult[TrainPair]:
    """Query -> page pairs; the set has no hard negatives."""
    folder = Path(folder)
    source = name or folder.name
    result: ReadResult[TrainPair] = ReadResult()
    checker = ImageChecker(check_images)
    for path, table in _tables(parquet_files(folder / "data", "train-*.parquet"), COLPALI_COLUMNS, result):
        for row, values, undecodable in table_rows(table):
            if undecodable:
                result.reject(Problem(str(path), row, utf8_problem(undecodable), row_values(values)))
                continue
            image, issue = _image(values["image"], folder, checker)
            query = text(values["query"])
            issues = [issue] if issue else []
            if not query.strip():
                issues.append("query is empty")
            if issues:
                result.reject(Problem(str(path), row, "; ".join(issues), row_values(values)))
                continue
            result.keep(str(path))
            result.records.append(TrainPair(source, row, Side(query), Side("", image)))
    return result


def scan_vidore_qa(folder: str | Path, check_images: CheckImages = "exists",
                   name: str | None = None) -> ReadResult[RetrievalSet]:
    """A v1 QA set as corpus/queries/qrels: pages keyed by image_filename, queries by first occurrence."""
    folder = Path(folder)
    result: ReadResult[RetrievalSet] = ReadResult()
    checker = ImageChecker(check_images)
    data = RetrievalSet(name or folder.name, {}, {}, {})
    query_ids: dict[str, str] = {}
    fingerprints: dict[str, str] = {}
    for path, table in _tables(parquet_files(folder / "data", "test-*.parquet"), QA_COLUMNS, result):
        for row, values, undecodable in table_rows(table):
            issue = _qa_scan_row(values, undecodable, folder, checker, data, query_ids, fingerprints)
            if issue:
                result.reject(Problem(str(path), row, issue, row_values(values)))
            else:
                result.keep(str(path))
    result.records.append(data)
    return result


def _qa_scan_row(values: dict, undecodable: list[str], folder: Path, checker: ImageChecker, data: RetrievalSet,
                 query_ids: dict[str, str], fingerprints: dict[str, str]) -> str | None:
    if not undecodable:
        return _qa_row(values, folder, checker, data, query_ids, fingerprints)
    if undecodable != ["query"]:
        return utf8_problem(undecodable)
    issue = _qa_row({**values, "query": None}, folder, checker, data, query_ids, fingerprints)  # the page alone
    return f"{utf8_problem(undecodable)}; " + (issue or f"page {values['image_filename']!r} is kept in the corpus")


def _qa_row(values: dict, folder: Path, checker: ImageChecker, data: RetrievalSet, query_ids: dict[str, str],
            fingerprints: dict[str, str]) -> str | None:
    filename = text(values["image_filename"]).strip()
    if not filename:
        return "image_filename is empty"
    image, issue = _image(values["image"], folder, checker)
    if issue:
        return issue
    fingerprint = image.fingerprint()
    if fingerprints.setdefault(filename, fingerprint) != fingerprint:
        return f"duplicate image_filename {filename!r} with a different image"
    # The page is valid on its own: it stays in the corpus (a distractor for other queries)
    # even when this row's query is set aside.
    data.corpus.setdefault(filename, image)
    query = values["query"]
    if query is not None and not str(query).strip():
        return (f"query is an empty string (use null for a corpus-only page); page {filename!r} is kept "
                f"in the corpus, only the query is set aside")
    if query is not None:
        qid = query_ids.setdefault(str(query), str(len(query_ids)))
        data.queries[qid] = str(query)
        data.qrels.setdefault(qid, {})[filename] = 1.0
    return None


def scan_vidore_beir(folder: str | Path, check_images: CheckImages = "exists",
                     name: str | None = None) -> ReadResult[RetrievalSet]:
    """A BEIR set (v1 `_beir` or v2); bad rows are reported, and qrels must name known ids."""
    folder = Path(folder)
    result: ReadResult[RetrievalSet] = ReadResult()
    data = RetrievalSet(name or folder.name, {}, {}, {})
    tables = {config: _tables(parquet_files(folder / config, "*.parquet"), columns, result, BEIR_OPTIONAL.get(config))
              for config, columns in BEIR_COLUMNS.items()}
    checker = ImageChecker(check_images)
    _beir_rows(tables["corpus"], result, lambda v: _corpus_row(v, folder, checker, data))
    _beir_rows(tables["queries"], result, lambda v: _query_row(v, data))
    _beir_rows(tables["qrels"], result, lambda v: _qrel_row(v, data))
    result.records.append(data)
    return result


def _beir_rows(tables: list[tuple[Path, pa.Table]], result: ReadResult, check) -> None:
    for path, table in tables:
        for row, values, undecodable in table_rows(table):
            issue = utf8_problem(undecodable) if undecodable else check(values)
            if issue:
                result.reject(Problem(str(path), row, issue, row_values(values)))
            else:
                result.keep(str(path))


def _corpus_row(values: dict, folder: Path, checker: ImageChecker, data: RetrievalSet) -> str | None:
    cid = _id(values["corpus-id"])
    if cid is None:
        return "corpus-id is missing"
    if cid in data.corpus:
        return f"duplicate corpus-id {cid}"
    image, issue = _image(values["image"], folder, checker)
    if issue:
        return f"corpus-id {cid}: {issue}"
    data.corpus[cid] = image
    return None


def _query_row(values: dict, data: RetrievalSet) -> str | None:
    qid = _id(values["query-id"])
    if qid is None:
        return "query-id is missing"
    if qid in data.queries:
        return f"duplicate query-id {qid}"
    query = text(values["query"])
    if not query.strip():
        return f"query-id {qid}: query text is empty"
    data.queries[qid] = query
    if values.get("language"):
        data.languages[qid] = str(values["language"])
    return None


def _qrel_row(values: dict, data: RetrievalSet) -> str | None:
    qid, cid, score = _id(values["query-id"]), _id(values["corpus-id"]), values["score"]
    if qid not in data.queries:
        return f"qrels point to unknown query-id {values['query-id']!r} (not in queries)"
    if cid not in data.corpus:
        return f"qrels point to unknown corpus-id {values['corpus-id']!r} (not in corpus)"
    if not isinstance(score, (int, float)) or isinstance(score, bool):
        return f"score must be a number, got {score!r}"
    if not math.isfinite(score) or score != int(score):
        # evaluation's nDCG (trec_eval) takes whole-number grades; catch it here, not after training
        return f"score must be a whole-number relevance grade, got {score!r}"
    judged = data.qrels.setdefault(qid, {})
    if cid in judged:
        return f"duplicate qrel for query-id {qid} and corpus-id {cid} (score {judged[cid]:g} already given)"
    judged[cid] = float(score)
    return None


def _id(value) -> str | None:
    return None if value is None else str(value)
