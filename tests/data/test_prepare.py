"""The prepare stage: bad input stops it (or is quarantined) with file, row and problem; good input
becomes manifests, mixture weights, an evaluation index and counts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from metaembed.data import manifests
from metaembed.data.params import PrepareParams
from metaembed.data.prepare import run_prepare
from metaembed.data.problems import DataError

TRAIN = "mmeb-train/ObjectClass_full/original-00000-of-00001.parquet"
EVAL = "mmeb-eval/SceneT2I/test-00000-of-00001.parquet"
V2 = "vidore/synth_reports_v2"


@pytest.fixture
def mini_raw(raw_dir, tmp_path) -> Path:
    """A few sets of the generated data, copied so a test may break them."""
    raw = tmp_path / "raw"
    for part in ("mmeb-train/ObjectClass_full", "mmeb-train/images/ObjectClass_full", "mmeb-train/SceneT2I_single",
                 "mmeb-train/images/SceneT2I_single", "mmeb-eval/SceneT2I", "mmeb-eval/images/SceneT2I", V2,
                 "vidore/colpali_train_set"):
        shutil.copytree(raw_dir / part, raw / part)
    shutil.copy(raw_dir / "synth.json", raw / "synth.json")
    return raw


def _params(raw: Path, mode: str = "fail", **extra) -> PrepareParams:
    return PrepareParams(out_dir=str(raw.parent / "prepared"), on_bad_rows=mode, **extra)


def _edit(path: Path, change) -> None:
    table = pq.read_table(path)
    rows = table.to_pylist()
    change(rows)
    pq.write_table(pa.Table.from_pylist(rows, table.schema), path)


def _fail(raw: Path) -> str:
    with pytest.raises(DataError) as caught:
        run_prepare(raw, _params(raw), progress=False)
    assert not (raw.parent / "prepared").exists()
    return str(caught.value)


def _image_of(raw: Path, row: int) -> Path:
    return raw / "mmeb-train" / pq.read_table(raw / TRAIN).column("qry_image_path")[row].as_py()


def test_missing_image_file(mini_raw):
    _image_of(mini_raw, 2).unlink()
    message = _fail(mini_raw)
    assert f"{mini_raw / TRAIN} row 2: query: image file not found" in message
    assert "on_bad_rows: quarantine" in message


def test_undecodable_image(mini_raw):
    _image_of(mini_raw, 4).write_bytes(b"not a png at all")
    assert f"{mini_raw / TRAIN} row 4: query: cannot decode image" in _fail(mini_raw)


def test_empty_text_on_both_sides(mini_raw):
    def blank(rows):
        rows[1].update(qry="", qry_image_path="")
        rows[3].update(pos_text="", pos_image_path=None)
    _edit(mini_raw / TRAIN, blank)
    message = _fail(mini_raw)
    assert f"{mini_raw / TRAIN} row 1: query is empty: no text and no image" in message
    assert f"{mini_raw / TRAIN} row 3: positive is empty" in message


def test_duplicate_ids(mini_raw):
    _edit(mini_raw / V2 / "corpus" / "test-00000-of-00001.parquet", lambda rows: rows[5].update({"corpus-id": 0}))
    message = _fail(mini_raw)
    assert f"{mini_raw / V2 / 'corpus' / 'test-00000-of-00001.parquet'} row 5: duplicate corpus-id 0" in message


def test_qrels_pointing_to_unknown_ids(mini_raw):
    def stray(rows):
        rows.append({"query-id": 0, "corpus-id": 9999, "score": 1.0})
        rows.append({"query-id": 8888, "corpus-id": 0, "score": 1.0})
    _edit(mini_raw / V2 / "qrels" / "test-00000-of-00001.parquet", stray)
    message = _fail(mini_raw)
    qrels = mini_raw / V2 / "qrels" / "test-00000-of-00001.parquet"
    assert "unknown corpus-id 9999 (not in corpus)" in message and "unknown query-id 8888" in message
    assert f"{qrels} row " in message


def test_parquet_without_expected_columns(mini_raw):
    path = mini_raw / EVAL
    pq.write_table(pq.read_table(path).drop_columns(["tgt_img_path"]), path)
    message = _fail(mini_raw)
    assert f"{path}: missing column(s) ['tgt_img_path']" in message


def test_quarantine_sets_bad_rows_aside_and_counts_them(mini_raw):
    _image_of(mini_raw, 2).unlink()
    qrels = mini_raw / V2 / "qrels" / "test-00000-of-00001.parquet"
    stray_row = pq.read_table(qrels).num_rows
    _edit(qrels, lambda rows: rows.append({"query-id": 0, "corpus-id": 9999, "score": 1.0}))
    pq.write_table(pq.read_table(mini_raw / EVAL).drop_columns(["tgt_text"]), mini_raw / EVAL)
    report = run_prepare(mini_raw, _params(mini_raw, "quarantine"), progress=False)
    out = mini_raw.parent / "prepared"
    bad = [json.loads(line) for line in (out / "quarantine" / "bad_rows.jsonl").read_text().splitlines()]
    assert sorted((b["file"], b["row"] if b["row"] is not None else -1) for b in bad) == sorted(
        [(str(mini_raw / TRAIN), 2), (str(qrels), stray_row), (str(mini_raw / EVAL), -1)])
    assert report.quarantined_rows == 1 + 1 + 6  # a train row, a qrel, and the 6 rows of the broken eval file
    counts = json.loads((out / "counts.json").read_text())
    assert counts["quarantined_rows"] == 8
    assert counts["sources"]["mmeb-train/ObjectClass_full"] == {
        "collection": "mmeb-train", "layout": "mmeb_train", "role": "train", "rows_read": 12, "kept": 11,
        "quarantined_rows": 1, "files": {TRAIN: {"rows_read": 12, "kept": 11, "quarantined": 1}}}
    assert "no usable rows" in counts["sources"]["mmeb-eval/SceneT2I"]["note"]
    assert len(manifests.read_train(out, "ObjectClass_full")) == 11
    assert "SceneT2I" not in manifests.load_index(out)["mmeb"]
    row_two = next(b for b in bad if b["row"] == 2)
    assert "image file not found" in row_two["problem"] and row_two["values"]["qry"]


def test_prepare_end_to_end(mini_raw, tmp_path):
    (mini_raw / "notes").mkdir()
    report = run_prepare(mini_raw, _params(mini_raw), progress=False)
    out = mini_raw.parent / "prepared"
    assert report.problems == [] and report.ignored == [str(mini_raw / "notes")]
    mixture = manifests.Mixture.load(out)
    assert set(mixture.sources) == {"ObjectClass_full", "SceneT2I_single", "colpali_train_set"}
    assert mixture.sources["SceneT2I_single"]["level"] == "single"
    assert mixture.sources["ObjectClass_full"]["weight"] == pytest.approx(12 ** 0.5)
    first, second = mixture.phases
    assert first["weights"] == pytest.approx({"ObjectClass_full": 0.0, "SceneT2I_single": 1.0, "colpali_train_set": 0.0})
    assert sum(second["weights"].values()) == pytest.approx(1.0) and second["weights"]["ObjectClass_full"] > 0
    pairs = manifests.read_train(out, "ObjectClass_full")
    assert len(pairs) == 12 and pairs[0].query.image.open().size == (112, 112)
    index = manifests.load_index(out)
    assert index["mmeb"]["SceneT2I"]["chance_p_at_1"] == pytest.approx(1 / 24)
    assert index["mmeb"]["SceneT2I"]["split"] == "in_distribution"
    queries = manifests.read_mmeb_eval(out, "SceneT2I")
    assert len(queries) == 6 and queries[0].candidates[0].image.exists() and queries[0].twin_indices
    v2 = manifests.read_vidore_eval(out, "synth_reports_v2")
    assert v2.corpus["0"].data is not None and set(v2.languages.values()) == {"en", "fr"}
    assert 0 < index["vidore"]["synth_reports_v2"]["chance_ndcg_at_5"] < 1
    counts = json.loads((out / "counts.json").read_text())
    scene_files = counts["sources"]["mmeb-eval/SceneT2I"]["files"]
    assert scene_files[EVAL]["kept"] == 6 and counts["quarantined_rows"] == 0
    assert scene_files["mmeb-eval/SceneT2I/hard_negatives.parquet"] == {
        "rows_read": 6, "kept": 6, "quarantined": 0, "annotation": True}
    assert counts["sources"]["mmeb-eval/SceneT2I"]["rows_read"] == 6  # the queries; twin lists annotate them


def test_prepare_output_is_deterministic_and_portable(mini_raw, tmp_path):
    run_prepare(mini_raw, _params(mini_raw), progress=False)
    out = mini_raw.parent / "prepared"
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    moved = tmp_path / "elsewhere"
    shutil.copytree(mini_raw.parent, moved)  # raw and prepared move together
    run_prepare(moved / "raw", _params(moved / "raw"), progress=False)
    after = {p.relative_to(moved / "prepared"): p.read_bytes() for p in (moved / "prepared").rglob("*") if p.is_file()}
    assert before == after
    assert manifests.read_train(moved / "prepared", "SceneT2I_single")[0].positive.image.exists()


def test_unknown_mixture_weight_names_the_source(mini_raw):
    params = _params(mini_raw, mixture={"weights": {"NoSuchSet": 2.0}})
    with pytest.raises(ValueError, match=r"prepare\.mixture\.weights names unknown training source\(s\) \['NoSuchSet'\]"):
        run_prepare(mini_raw, params, progress=False)


def test_catalog_knows_real_mmeb_subsets(tmp_path):
    from metaembed.data.catalog import Catalog

    catalog = Catalog(tmp_path)  # no synth.json: a folder of real data
    assert catalog.eval_info("MSCOCO_t2i") == {"meta_task": "retrieval", "split": "in_distribution"}
    assert catalog.eval_info("Wiki-SS-NQ") == {"meta_task": "retrieval", "split": "out_of_distribution"}
    assert catalog.train_info("ImageNet_1K") == {"meta_task": "classification", "level": None}
    assert catalog.eval_info("MyOwnSet")["meta_task"] == "unknown"


def test_counts_hold_rows_read_kept_and_quarantined_for_every_file(mini_raw):
    """Good, partly bad and unreadable files: per file, rows read = kept + quarantined."""
    _image_of(mini_raw, 2).unlink()  # partly bad: one row of TRAIN
    pq.write_table(pq.read_table(mini_raw / EVAL).drop_columns(["tgt_text"]), mini_raw / EVAL)  # 6 rows, no column
    colpali = mini_raw / "vidore" / "colpali_train_set" / "data"
    good = next(colpali.glob("train-*.parquet"))
    damaged = colpali / "train-00001-of-00002.parquet"  # footer intact, data pages overwritten
    shutil.copy(good, damaged)
    payload = bytearray(damaged.read_bytes())
    payload[4:len(payload) // 2] = b"\xff" * (len(payload) // 2 - 4)
    damaged.write_bytes(bytes(payload))
    truncated = colpali / "train-00002-of-00002.parquet"  # no footer: its row count is unknown
    truncated.write_bytes(good.read_bytes()[:200])
    run_prepare(mini_raw, _params(mini_raw, "quarantine"), progress=False)
    counts = json.loads((mini_raw.parent / "prepared" / "counts.json").read_text())
    for name, source in counts["sources"].items():
        for file, entry in source["files"].items():
            assert entry["rows_read"] == entry["kept"] + entry["quarantined"], (name, file, entry)
        assert source["rows_read"] == source["kept"] + source["quarantined_rows"] >= 0, name
        assert source["rows_read"] == sum(e["rows_read"] for e in source["files"].values() if not e.get("annotation"))
    files = counts["sources"]["vidore/colpali_train_set"]["files"]
    rel = lambda path: path.relative_to(mini_raw).as_posix()  # noqa: E731
    rows = pq.ParquetFile(good).metadata.num_rows
    assert files[rel(good)] == {"rows_read": rows, "kept": rows, "quarantined": 0}
    assert files[rel(damaged)]["quarantined"] == rows and "cannot read parquet" in files[rel(damaged)]["error"]
    assert files[rel(truncated)]["rows_read"] == 0 and "row count unknown" in files[rel(truncated)]["error"]
    scene = counts["sources"]["mmeb-eval/SceneT2I"]["files"][EVAL]
    assert scene["rows_read"] == scene["quarantined"] == 6 and "missing column(s) ['tgt_text']" in scene["error"]
    assert counts["sources"]["mmeb-train/ObjectClass_full"]["files"][TRAIN] == {
        "rows_read": 12, "kept": 11, "quarantined": 1}
    assert counts["quarantined_rows"] == sum(s["quarantined_rows"] for s in counts["sources"].values())


def test_twin_indices_outside_the_candidates(mini_raw):
    """Before, index 0 (the positive) or -1 passed silently and 99 crashed evaluation with an IndexError."""
    twins = mini_raw / "mmeb-eval" / "SceneT2I" / "hard_negatives.parquet"
    _edit(twins, lambda rows: rows[3].update(twin_indices=[0, 5, 99]))
    message = _fail(mini_raw)
    assert (f"{mini_raw / EVAL} row 3: hard_negatives.parquet row 3: twin indices [0, 5, 99] must point at "
            f"candidates 1..23") in message
