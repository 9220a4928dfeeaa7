"""`data/prepared`: the normalised tables that training and evaluation read, whatever the raw format.

    train/<source>.parquet   row, qry_text, qry_image, pos_text, pos_image, neg_text, neg_image, pos_key
    train/mixture.json       sources (rows, level, meta-task, weight) and per-phase sampling weights
    eval/mmeb/<Subset>.parquet   row, qry_text, qry_image, tgt_text[], tgt_image[], twin_indices[]
    eval/vidore/<name>/{corpus,queries,qrels}.parquet   string ids, float scores
    eval/index.json          every evaluation set with its metric and chance level
    counts.json              rows read, kept and quarantined per source and per file (read = kept + quarantined)
Images are `datasets`-style {bytes, path} cells; paths are relative to the prepared folder, so the
pair data/raw + data/prepared can move as one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from metaembed.data.records import EvalQuery, ImageRef, RetrievalSet, Side, TrainPair
from metaembed.data.tables import IMAGE_TYPE, read_table, write_table

TRAIN_DIR, EVAL_DIR, MIXTURE_FILE, INDEX_FILE, COUNTS_FILE = "train", "eval", "mixture.json", "index.json", "counts.json"


def image_cell(image: ImageRef | None, base: Path) -> dict | None:
    if image is None:
        return None
    if image.data is not None:
        return {"bytes": image.data, "path": None}
    return {"bytes": None, "path": Path(os.path.relpath(Path(image.path).resolve(), base.resolve())).as_posix()}


def cell_image(cell: dict | None, base: Path) -> ImageRef | None:
    if cell is None:
        return None
    if cell.get("bytes") is not None:
        return ImageRef(data=cell["bytes"])
    return ImageRef(path=base / cell["path"])


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")


# training ---------------------------------------------------------------------------------------
def write_train(out: Path, source: str, pairs: list[TrainPair]) -> Path:
    def side_columns(prefix: str, sides: list[Side | None]) -> dict[str, pa.Array]:
        return {f"{prefix}_text": pa.array([s.text if s else None for s in sides], pa.string()),
                f"{prefix}_image": pa.array([image_cell(s.image, out) if s else None for s in sides], IMAGE_TYPE)}

    columns = {"row": pa.array([p.row for p in pairs], pa.int64()),
               **side_columns("qry", [p.query for p in pairs]), **side_columns("pos", [p.positive for p in pairs]),
               **side_columns("neg", [p.negative for p in pairs]),
               "pos_key": pa.array([_content_key(p.positive, out) for p in pairs], pa.string())}
    return write_table(pa.table(columns), out / TRAIN_DIR / f"{source}.parquet", ("qry_image", "pos_image", "neg_image"))


def _content_key(side: Side, base: Path) -> str:
    """Identity of a positive for batch de-duplication; the same wherever the folders live."""
    cell = image_cell(side.image, base)
    digest = hashlib.sha1(side.text.encode())
    if cell is not None:
        digest.update(cell["path"].encode() if cell["path"] else hashlib.sha1(cell["bytes"]).digest())
    return digest.hexdigest()


def read_train(prepared: Path, source: str) -> list[TrainPair]:
    table = read_table(prepared / TRAIN_DIR / f"{source}.parquet")
    pairs = []
    for values in table.to_pylist():
        sides = {}
        for prefix in ("qry", "pos", "neg"):
            text, image = values[f"{prefix}_text"], cell_image(values[f"{prefix}_image"], prepared)
            sides[prefix] = None if text is None and image is None else Side(text or "", image)
        pairs.append(TrainPair(source, values["row"], sides["qry"], sides["pos"], sides["neg"]))
    return pairs


def read_pos_keys(prepared: Path, source: str) -> list[str]:
    return read_table(prepared / TRAIN_DIR / f"{source}.parquet", ("pos_key",)).column("pos_key").to_pylist()


@dataclass(frozen=True)
class Mixture:
    sources: dict[str, dict]  # name -> rows, level, meta_task, collection, weight
    phases: list[dict]  # [{until, weights: {source: probability}}]

    @classmethod
    def load(cls, prepared: str | Path) -> Mixture:
        payload = json.loads((Path(prepared) / TRAIN_DIR / MIXTURE_FILE).read_text())
        return cls(payload["sources"], payload["phases"])


# evaluation -------------------------------------------------------------------------------------
def write_mmeb_eval(out: Path, subset: str, queries: list[EvalQuery]) -> Path:
    columns = {
        "row": pa.array([q.row for q in queries], pa.int64()),
        "qry_text": pa.array([q.query.text for q in queries], pa.string()),
        "qry_image": pa.array([image_cell(q.query.image, out) for q in queries], IMAGE_TYPE),
        "tgt_text": pa.array([[c.text for c in q.candidates] for q in queries], pa.list_(pa.string())),
        "tgt_image": pa.array([[image_cell(c.image, out) for c in q.candidates] for q in queries],
                              pa.list_(IMAGE_TYPE)),
        "twin_indices": pa.array([list(q.twin_indices) if q.twin_indices is not None else None for q in queries],
                                 pa.list_(pa.int32())),
    }
    return write_table(pa.table(columns), out / EVAL_DIR / "mmeb" / f"{subset}.parquet", ("qry_image",))


def read_mmeb_eval(prepared: Path, subset: str) -> list[EvalQuery]:
    queries = []
    for values in read_table(prepared / EVAL_DIR / "mmeb" / f"{subset}.parquet").to_pylist():
        candidates = tuple(Side(text or "", cell_image(image, prepared))
                           for text, image in zip(values["tgt_text"], values["tgt_image"]))
        twins = tuple(values["twin_indices"]) if values["twin_indices"] is not None else None
        query = Side(values["qry_text"] or "", cell_image(values["qry_image"], prepared))
        queries.append(EvalQuery(subset, values["row"], query, candidates, twins))
    return queries


def write_vidore_eval(out: Path, data: RetrievalSet) -> Path:
    folder = out / EVAL_DIR / "vidore" / data.name
    corpus = pa.table({"corpus-id": pa.array(list(data.corpus), pa.string()),
                       "image": pa.array([image_cell(i, out) for i in data.corpus.values()], IMAGE_TYPE)})
    queries = pa.table({"query-id": pa.array(list(data.queries), pa.string()),
                        "query": pa.array(list(data.queries.values()), pa.string()),
                        "language": pa.array([data.languages.get(q) for q in data.queries], pa.string())})
    rels = [(q, c, s) for q, docs in data.qrels.items() for c, s in docs.items()]
    qrels = pa.table({"query-id": pa.array([r[0] for r in rels], pa.string()),
                      "corpus-id": pa.array([r[1] for r in rels], pa.string()),
                      "score": pa.array([r[2] for r in rels], pa.float64())})
    write_table(corpus, folder / "corpus.parquet", ("image",))
    write_table(queries, folder / "queries.parquet")
    write_table(qrels, folder / "qrels.parquet")
    return folder


def read_vidore_eval(prepared: Path, name: str) -> RetrievalSet:
    folder = Path(prepared) / EVAL_DIR / "vidore" / name
    corpus = {row["corpus-id"]: cell_image(row["image"], prepared) for row in read_table(folder / "corpus.parquet").to_pylist()}
    data = RetrievalSet(name, corpus, {}, {})
    for row in read_table(folder / "queries.parquet").to_pylist():
        data.queries[row["query-id"]] = row["query"]
        if row["language"]:
            data.languages[row["query-id"]] = row["language"]
    for row in read_table(folder / "qrels.parquet").to_pylist():
        data.qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = row["score"]
    return data


def load_index(prepared: str | Path) -> dict[str, dict]:
    return json.loads((Path(prepared) / EVAL_DIR / INDEX_FILE).read_text())
