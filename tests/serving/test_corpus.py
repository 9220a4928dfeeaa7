"""Layout detection and candidates of every corpus layout, and unreadable files: named, or skipped
and counted (never dropped unreported)."""

from __future__ import annotations

import io
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from metaembed.data.tables import IMAGE_TYPE, write_table
from metaembed.serving.corpus import CorpusError, read_corpus


def _png(colour: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (colour, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_plain_folder_gives_one_candidate_per_image_and_text(plain_corpus, plain_texts):
    corpus = read_corpus(plain_corpus)

    assert corpus.layout == "plain"
    ids = [c.id for c in corpus.candidates]
    assert ids == sorted(["doc0.txt", "doc1.txt", "notes/doc2.txt", "notes/doc3.txt", "red.png", "pages/blue.jpg"])
    by_id = {c.id: c for c in corpus.candidates}
    assert by_id["notes/doc2.txt"].side.text == plain_texts["notes/doc2.txt"]
    assert by_id["notes/doc2.txt"].display == plain_texts["notes/doc2.txt"]
    assert by_id["red.png"].side.image.path == plain_corpus / "red.png" and by_id["red.png"].side.text == ""
    assert by_id["red.png"].display == "red.png"
    # The pdf is reported as ignored; the hidden file is not a candidate and not reported.
    assert corpus.ignored == ["notes.pdf"] and corpus.skipped == []


def test_unreadable_files_stop_the_build_by_name_or_are_skipped_and_listed(make_plain_corpus):
    folder = make_plain_corpus()
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    (folder / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (folder / "empty.txt").write_text("  \n")

    with pytest.raises(CorpusError) as error:
        read_corpus(folder)
    message = str(error.value)
    assert "3 unreadable" in message and "--on-bad skip" in message
    for name, why in [("broken.png", "cannot decode image"), ("latin1.txt", "not valid UTF-8"),
                      ("empty.txt", "empty text file")]:
        assert f"{name}: " in message and why in message

    corpus = read_corpus(folder, on_bad="skip")
    assert sorted(s.item for s in corpus.skipped) == ["broken.png", "empty.txt", "latin1.txt"]
    assert len(corpus.candidates) == 6


def test_a_folder_without_candidates_says_what_counts_as_one(tmp_path):
    (tmp_path / "only.csv").write_text("a,b\n")
    with pytest.raises(CorpusError, match=r"no candidates to index; 1 file\(s\) ignored, e\.g\. only\.csv: only"):
        read_corpus(tmp_path)
    with pytest.raises(CorpusError, match="no such folder"):
        read_corpus(tmp_path / "absent")


def test_the_real_vidore_beir_sample_gives_its_pages(vidore_sample):
    corpus = read_corpus(vidore_sample)

    assert corpus.layout == "vidore-beir"
    assert [c.id for c in corpus.candidates] == ["0", "1", "2"]
    assert all(c.side.image is not None and c.side.image.data for c in corpus.candidates)
    assert corpus.candidates[0].display.startswith("page 0 (embedded image, ")


def test_a_broken_vidore_page_is_named_and_only_corpus_rows_count(vidore_sample, tmp_path):
    folder = tmp_path / "beir"
    shutil.copytree(vidore_sample, folder)
    path = folder / "corpus" / "test-00000-of-00001.parquet"
    rows = pq.read_table(path).to_pylist()
    rows[2]["image"] = {"bytes": b"not an image", "path": None}
    write_table(pa.Table.from_pylist(rows, pq.read_table(path).schema), path, ("image",))
    queries = folder / "queries" / "test-00000-of-00001.parquet"
    rows = pq.read_table(queries).to_pylist()
    rows[0]["query"] = " "  # a bad query row is not a candidate: no reason to stop or count
    write_table(pa.Table.from_pylist(rows, pq.read_table(queries).schema), queries)

    with pytest.raises(CorpusError, match=rf"1 unreadable candidate\(s\): {path} row 2: corpus-id 2: cannot decode"):
        read_corpus(folder)
    corpus = read_corpus(folder, on_bad="skip")
    assert [c.id for c in corpus.candidates] == ["0", "1"] and len(corpus.skipped) == 1


def test_a_vidore_qa_folder_keeps_pages_whose_query_is_bad(tmp_path):
    table = pa.table({"query": pa.array(["", "Which year?", "Which city?"], pa.string()),
                      "image": pa.array([{"bytes": _png(1), "path": None}, {"bytes": _png(2), "path": None},
                                         {"bytes": b"broken", "path": None}], IMAGE_TYPE),
                      "image_filename": ["a.png", "b.png", "c.png"]})
    write_table(table, tmp_path / "qa" / "data" / "test-00000-of-00001.parquet", ("image",))

    corpus = read_corpus(tmp_path / "qa", on_bad="skip")
    assert corpus.layout == "vidore-qa"
    assert [c.id for c in corpus.candidates] == ["a.png", "b.png"]  # a.png's empty query does not drop it
    [skipped] = corpus.skipped
    assert skipped.item.endswith("row 2") and "cannot decode image" in skipped.reason


def test_an_mmeb_eval_folder_indexes_each_distinct_candidate_once(tmp_path):
    (tmp_path / "img").mkdir()
    Image.new("RGB", (16, 16), "red").save(tmp_path / "img" / "a.png")
    texts = pa.list_(pa.string())
    table = pa.table({
        "qry_text": ["which animal?", "which one?", "and this?"],
        "qry_img_path": ["", "", ""],
        "tgt_text": pa.array([["<|image_1|> a cat", "a dog"], ["a dog", "<|image_1|> a cat"], ["x", "y"]], texts),
        "tgt_img_path": pa.array([["img/a.png", ""], ["", "img/a.png"], ["img/missing.png", ""]], texts),
    })
    (tmp_path / "Animals").mkdir()
    pq.write_table(table, tmp_path / "Animals" / "test-00000-of-00001.parquet")

    with pytest.raises(CorpusError, match=r"Animals/test-00000-of-00001\.parquet row 2: .*image file not found"):
        read_corpus(tmp_path)
    corpus = read_corpus(tmp_path, on_bad="skip")
    assert corpus.layout == "mmeb-eval"
    assert [(c.id, c.display) for c in corpus.candidates] == [
        ("Animals/0/0", "<|image_1|> a cat [image: img/a.png]"), ("Animals/0/1", "a dog")]
    assert len(corpus.skipped) == 1


@pytest.mark.parametrize("path, kind", [("data/train-00000-of-00001.parquet", "colpali"),
                                        ("Sub/original-00000-of-00001.parquet", "MMEB training")])
def test_training_folders_are_refused_as_corpora(tmp_path, path, kind):
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_bytes(b"")
    with pytest.raises(CorpusError, match=kind):
        read_corpus(tmp_path)
