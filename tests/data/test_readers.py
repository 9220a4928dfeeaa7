"""Every reader on the generated folders and on the real ViDoRe sample; images as paths and bytes."""

from __future__ import annotations

import io
import re
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from metaembed.data.problems import DataError
from metaembed.data.readers import (
    layout,
    read_colpali_train,
    read_mmeb_eval,
    read_mmeb_train,
    read_vidore,
    scan_colpali_train,
    scan_vidore_qa,
    vidore,
)
from metaembed.data.tables import IMAGE_TYPE, write_table


def test_mmeb_train_reader(raw_dir):
    subsets = read_mmeb_train(raw_dir / "mmeb-train", check_images="decode")
    assert set(subsets) == {f"{task}_{level}" for task in ("ObjectClass", "SceneVQA", "SceneT2I", "SceneI2T",
                                                           "SceneIT2I", "SceneGrounding") for level in ("single", "full")}
    pair = subsets["SceneGrounding_full"][0]
    assert pair.query.image.path.is_file() and "<|image_1|>" in pair.query.text
    assert pair.positive.image.open().size == (56, 56)
    assert pair.negative is not None and pair.negative.image.path != pair.positive.image.path
    t2i = subsets["SceneT2I_single"][3]
    assert t2i.query.image is None and t2i.query.text.startswith("Find an image")
    assert t2i.positive.image.open().size == (112, 112)


def test_mmeb_train_reader_with_a_separate_image_root(raw_dir, tmp_path):
    shutil.copytree(raw_dir / "mmeb-train" / "ObjectClass_full", tmp_path / "tables" / "ObjectClass_full")
    with pytest.raises(DataError, match="image file not found"):
        read_mmeb_train(tmp_path / "tables")
    pairs = read_mmeb_train(tmp_path / "tables", image_root=raw_dir / "mmeb-train")["ObjectClass_full"]
    assert len(pairs) == 12 and pairs[0].query.image.exists()


def test_mmeb_eval_reader(raw_dir):
    subsets = read_mmeb_eval(raw_dir / "mmeb-eval", check_images="decode")
    assert len(subsets) == 9
    query = subsets["SceneT2I"][0]
    assert len(query.candidates) == 24 and query.candidates[0].image.path.name.endswith("_pos.png")
    assert query.twin_indices and all(1 <= i < 24 for i in query.twin_indices)
    labels = subsets["ObjectClass"][0]
    assert labels.query.image is not None and all(c.image is None and c.text for c in labels.candidates)


@pytest.mark.parametrize("name, kind", [("synth_reports_test_subsampled", "qa"),
                                        ("synth_reports_test_subsampled_beir", "beir"),
                                        ("synth_reports_v2", "beir")])
def test_vidore_readers_on_generated_sets(raw_dir, name, kind):
    folder = raw_dir / "vidore" / name
    assert layout(folder) == kind
    data = read_vidore(folder, check_images="decode")
    assert data.queries and data.corpus and set(data.qrels) == set(data.queries)
    assert all(cid in data.corpus for docs in data.qrels.values() for cid in docs)
    page = next(iter(data.corpus.values()))
    assert page.data is not None and page.open().size == (112, 112)
    if name == "synth_reports_v2":
        assert set(data.languages.values()) == {"en", "fr"}
        assert {2.0, 1.0} <= {s for docs in data.qrels.values() for s in docs.values()}


def test_qa_and_beir_layouts_of_one_set_agree(raw_dir):
    qa = read_vidore(raw_dir / "vidore" / "synth_reports_test_subsampled")
    beir = read_vidore(raw_dir / "vidore" / "synth_reports_test_subsampled_beir")
    assert sorted(qa.queries.values()) == sorted(beir.queries.values())
    assert len(qa.corpus) == len(beir.corpus)


def test_qa_reader_deduplicates_queries_and_keeps_corpus_only_pages(tmp_path, raw_dir):
    page = (raw_dir / "vidore" / "synth_reports_v2" / "corpus" / "test-00000-of-00001.parquet")
    images = pq.read_table(page).column("image").to_pylist()[:3]
    rows = {"query": ["Which page?", None, "Which page?", "Other"], "image": [images[0], images[1], images[0], images[2]],
            "image_filename": ["a.png", "b.png", "a.png", "c.png"]}
    table = pa.table({"query": pa.array(rows["query"], pa.string()), "image": pa.array(rows["image"], IMAGE_TYPE),
                      "image_filename": rows["image_filename"]})
    write_table(table, tmp_path / "qa" / "data" / "test-00000-of-00001.parquet", ("image",))
    data = read_vidore(tmp_path / "qa")
    assert sorted(data.queries.values()) == ["Other", "Which page?"]
    assert sorted(data.corpus) == ["a.png", "b.png", "c.png"]
    assert data.qrels[next(q for q, t in data.queries.items() if t == "Which page?")] == {"a.png": 1.0}


def test_colpali_train_reader(raw_dir):
    pairs = read_colpali_train(raw_dir / "vidore" / "colpali_train_set", check_images="decode")
    assert len(pairs) >= 8 and all(p.negative is None and p.query.image is None for p in pairs)
    assert pairs[0].positive.image.data.startswith(b"\x89PNG")


def test_real_vidore_beir_sample(vidore_sample):
    data = read_vidore(vidore_sample, check_images="decode")
    assert len(data.queries) == 2 and len(data.corpus) == 3
    assert data.qrels == {"0": {"0": 1.0}, "1": {"1": 1.0}}
    assert data.queries["0"].startswith("Based on the graph")
    assert data.corpus["2"].open().size[0] > 100


def test_beir_reader_with_images_as_paths(vidore_sample, tmp_path):
    """The same set with page images as files referenced by relative path instead of bytes."""
    folder = tmp_path / "as_paths"
    shutil.copytree(vidore_sample, folder)
    corpus_file = folder / "corpus" / "test-00000-of-00001.parquet"
    corpus = pq.read_table(corpus_file).to_pylist()
    (folder / "pages").mkdir()
    for row in corpus:
        Image.open(io.BytesIO(row["image"]["bytes"])).save(folder / "pages" / f"{row['corpus-id']}.png")
        row["image"] = {"bytes": None, "path": f"pages/{row['corpus-id']}.png"}
    write_table(pa.Table.from_pylist(corpus, pa.schema([("corpus-id", pa.int64()), ("image", IMAGE_TYPE)])),
                corpus_file, ("image",))
    data = read_vidore(folder, check_images="decode")
    assert data.corpus["1"].path == folder / "pages" / "1.png"
    assert data.corpus["1"].open().size == Image.open(folder / "pages" / "1.png").size
    (folder / "pages" / "2.png").unlink()
    with pytest.raises(DataError, match=r"row 2: corpus-id 2: image file not found"):
        read_vidore(folder)


def test_generated_beir_folder_loads_with_datasets(raw_dir):
    datasets = pytest.importorskip("datasets")
    folder = str(raw_dir / "vidore" / "synth_reports_v2")
    corpus = datasets.load_dataset(folder, "corpus", split="test")
    assert corpus[0]["image"].size == (112, 112)  # decoded as an Image feature, as on the hub
    qrels = datasets.load_dataset(folder, "qrels", split="test")
    assert isinstance(qrels[0]["score"], float)


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), seed, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _colpali_file(path, images: list[bytes]) -> None:
    table = pa.table({"query": [f"question {i}" for i in range(len(images))],
                      "image": pa.array([{"bytes": b, "path": None} for b in images], IMAGE_TYPE)})
    write_table(table, path, ("image",))


@pytest.mark.parametrize("files", [1, 2])
def test_corrupt_images_do_not_condemn_later_good_ones(tmp_path, files):
    """40 corrupt then 40 good embedded images in one colpali set, in one file or two (where the
    corrupt file's bytes are freed before the good ones are read, and an id()-keyed verdict cache
    handed 39 good rows the corrupt ones' verdict)."""
    good = [_png(seed) for seed in range(40)]
    corrupt = [b"\0" * len(image) for image in good]  # same sizes: freed addresses get reused
    data = tmp_path / "colpali" / "data"
    if files == 1:
        _colpali_file(data / "train-00000-of-00001.parquet", corrupt + good)
    else:
        _colpali_file(data / "train-00000-of-00002.parquet", corrupt)
        _colpali_file(data / "train-00001-of-00002.parquet", good)
    result = scan_colpali_train(tmp_path / "colpali", check_images="decode")
    assert len(result.records) == 40 and len(result.problems) == 40
    assert all("cannot decode image" in p.message for p in result.problems)
    assert [p.positive.image.data for p in result.records] == good


def test_an_unscalable_image_is_refused_with_its_file_and_row(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.array([[0, 1_000_000]], np.int32)).save(buffer, format="TIFF")
    path = tmp_path / "colpali" / "data" / "train-00000-of-00001.parquet"
    _colpali_file(path, [_png(1), buffer.getvalue()])
    with pytest.raises(DataError, match=rf"{path} row 1: cannot decode image .*outside the 16-bit range"):
        read_colpali_train(tmp_path / "colpali", check_images="decode")


def test_qa_row_with_a_bad_query_keeps_its_valid_page(tmp_path):
    table = pa.table({"query": pa.array(["", "Which year?"], pa.string()),
                      "image": pa.array([{"bytes": _png(1), "path": None}, {"bytes": _png(2), "path": None}],
                                        IMAGE_TYPE),
                      "image_filename": ["a.png", "b.png"]})
    path = tmp_path / "qa" / "data" / "test-00000-of-00001.parquet"
    write_table(table, path, ("image",))
    result = scan_vidore_qa(tmp_path / "qa", check_images="decode")
    data = result.records[0]
    assert sorted(data.corpus) == ["a.png", "b.png"]  # a.png stays as a distractor page
    assert list(data.queries.values()) == ["Which year?"]
    [problem] = result.problems
    assert (problem.file, problem.row) == (str(path), 0)
    assert "query is an empty string" in problem.message and "'a.png' is kept in the corpus" in problem.message


@pytest.fixture
def beir_copy(vidore_sample, tmp_path):
    folder = tmp_path / "beir"
    shutil.copytree(vidore_sample, folder)
    return folder


def _set_column(path, name, array) -> None:
    table = pq.read_table(path)
    pq.write_table(table.set_column(table.schema.get_field_index(name), name, array), path)


@pytest.mark.parametrize("config, column, array, expected", [
    ("corpus", "corpus-id", pa.array([0.0, 1.0, 2.0]), r"'corpus-id' is double, expected an id"),
    ("qrels", "score", pa.array(["1", "1"]), r"'score' is string, expected a number"),
    ("queries", "query", pa.array([["a"], ["b"]]), r"'query' is list<\w+: string>, expected text"),
])
def test_a_column_of_the_wrong_type_is_refused_for_the_file(beir_copy, config, column, array, expected):
    """Before, a float corpus-id became "0.0" and failed to match the qrels' "0", and a list of
    texts was read as the text "['a']" without a word."""
    path = beir_copy / config / "test-00000-of-00001.parquet"
    _set_column(path, column, array)
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}: wrong column type\(s\): {expected}"):
        read_vidore(beir_copy)


def test_text_that_is_not_utf8_spoils_only_its_row(beir_copy):
    path = beir_copy / "queries" / "test-00000-of-00001.parquet"
    texts = [b"a good question", b"caf\xe9 \xff"]
    offsets = pa.py_buffer(np.array([0, len(texts[0]), len(texts[0]) + len(texts[1])], np.int32).tobytes())
    _set_column(path, "query", pa.StringArray.from_buffers(2, offsets, pa.py_buffer(b"".join(texts))))
    result = vidore.scan_vidore_beir(beir_copy)
    assert result.records[0].queries == {"0": "a good question"}
    problems = {(p.file, p.row): p.message for p in result.problems}
    assert "['query'] hold text that is not valid UTF-8" in problems[(str(path), 1)]
    assert "unknown query-id 1" in problems[(str(beir_copy / "qrels" / "test-00000-of-00001.parquet"), 1)]


@pytest.mark.parametrize("scores, message", [
    ([1, 1, 0], r"row 2: duplicate qrel for query-id 0 and corpus-id 0 \(score 1 already given\)"),
    ([float("nan"), 1.0], r"row 0: score must be a whole-number relevance grade, got nan"),
    ([0.5, 1.0], r"row 0: score must be a whole-number relevance grade, got 0.5"),
])
def test_qrels_scores_are_single_whole_grades(beir_copy, scores, message):
    """Before, a second qrel silently replaced the first, and NaN or 0.5 passed until evaluation."""
    path = beir_copy / "qrels" / "test-00000-of-00001.parquet"
    rows = pq.read_table(path).to_pylist()
    rows = (rows + [{**rows[0]}])[:len(scores)]
    for row, score in zip(rows, scores):
        row["score"] = score
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(DataError, match=message):
        read_vidore(beir_copy)


def test_a_file_without_rows_is_a_problem(beir_copy):
    path = beir_copy / "queries" / "test-00000-of-00001.parquet"
    pq.write_table(pq.read_table(path).slice(0, 0), path)
    with pytest.raises(DataError, match=rf"{path}: has no rows"):
        read_vidore(beir_copy)


def _page(size, mode="RGB") -> dict:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def _replace_page(folder, row, cell) -> None:
    path = folder / "corpus" / "test-00000-of-00001.parquet"
    rows = pq.read_table(path).to_pylist()
    rows[row]["image"] = cell
    write_table(pa.Table.from_pylist(rows, pq.read_table(path).schema), path, ("image",))


def test_a_decompression_bomb_is_refused_before_decoding(beir_copy, monkeypatch):
    """Between Pillow's limit and twice it, Pillow only warns and decodes the whole image."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    _replace_page(beir_copy, 2, _page((40, 40), "1"))  # 1600 pixels: the warning range
    with pytest.raises(DataError, match=r"row 2: corpus-id 2: cannot decode image .*DecompressionBombWarning"):
        read_vidore(beir_copy, check_images="decode")


def test_a_strip_the_image_processor_refuses_is_reported(beir_copy):
    _replace_page(beir_copy, 1, _page((600, 2)))
    with pytest.raises(DataError, match=r"row 1: corpus-id 1: image .* is 600x2: .*aspect ratios above 200"):
        read_vidore(beir_copy, check_images="decode")
