"""Every reader on the generated folders and on the real ViDoRe sample; images as paths and bytes."""

from __future__ import annotations

import io
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from metaembed.data.problems import DataError
from metaembed.data.readers import (layout, read_colpali_train, read_mmeb_eval, read_mmeb_train, read_vidore)
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
