"""ViDoRe folders: the colpali training set, v1 QA sets, and BEIR sets (v1 `_beir` and v2).

    colpali train: data/train-*.parquet   query, image, image_filename, answer, source, ...
    v1 QA:         data/test-*.parquet    query, image, image_filename, ...; a null query marks a
                   corpus-only page; queries are deduplicated by text; relevant page = image_filename
    BEIR:          corpus/*.parquet (corpus-id, image), queries/*.parquet (query-id, query[, language]),
                   qrels/*.parquet (query-id, corpus-id, score: int or float)
Images are `datasets` Image cells: embedded bytes, or a path relative to the folder.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from metaembed.data.problems import Problem, ReadResult
from metaembed.data.readers.common import CheckImages, ImageChecker, parquet_files, row_values, struct_image, text
from metaembed.data.records import ImageRef, RetrievalSet, Side, TrainPair
from metaembed.data.tables import TableError, read_table

QA_COLUMNS = ("query", "image", "image_filename")
BEIR_COLUMNS = {"corpus": ("corpus-id", "image"), "queries": ("query-id", "query"),
                "qrels": ("query-id", "corpus-id", "score")}


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


def _tables(files: list[Path], required: tuple[str, ...], result: ReadResult) -> list[tuple[Path, pa.Table]]:
    tables = []
    for path in files:
        try:
            tables.append((path, read_table(path, required)))
        except TableError as error:
            result.problems.append(Problem(str(path), None, str(error).split(": ", 1)[1]))
    return tables


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
    for path, table in _tables(parquet_files(folder / "data", "train-*.parquet"), ("query", "image"), result):
        for row, values in enumerate(table.to_pylist()):
            result.rows_read += 1
            image, issue = _image(values["image"], folder, checker)
            query = text(values["query"])
            issues = [issue] if issue else []
            if not query.strip():
                issues.append("query is empty")
            if issues:
                result.problems.append(Problem(str(path), row, "; ".join(issues), row_values(values)))
                continue
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
        for row, values in enumerate(table.to_pylist()):
            result.rows_read += 1
            issue = _qa_row(values, folder, checker, data, query_ids, fingerprints)
            if issue:
                result.problems.append(Problem(str(path), row, issue, row_values(values)))
    result.records.append(data)
    return result


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
    query = values["query"]
    if query is not None and not str(query).strip():
        return "query is an empty string (use null for a corpus-only page)"
    data.corpus.setdefault(filename, image)
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
    tables = {config: _tables(parquet_files(folder / config, "*.parquet"), columns, result)
              for config, columns in BEIR_COLUMNS.items()}
    checker = ImageChecker(check_images)
    _beir_rows(tables["corpus"], result, lambda v: _corpus_row(v, folder, checker, data))
    _beir_rows(tables["queries"], result, lambda v: _query_row(v, data))
    _beir_rows(tables["qrels"], result, lambda v: _qrel_row(v, data))
    result.records.append(data)
    return result


def _beir_rows(tables: list[tuple[Path, pa.Table]], result: ReadResult, check) -> None:
    for path, table in tables:
        for row, values in enumerate(table.to_pylist()):
            result.rows_read += 1
            issue = check(values)
            if issue:
                result.problems.append(Problem(str(path), row, issue, row_values(values)))


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
    data.qrels.setdefault(qid, {})[cid] = float(score)
    return None


def _id(value) -> str | None:
    return None if value is None else str(value)
