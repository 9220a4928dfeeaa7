"""`metaembed index build`: what the index records about its model and corpus, and its sidecar."""

from __future__ import annotations

import json

from metaembed.cli import main
from metaembed.index import MultiVectorIndex
from metaembed.registry.register import folder_sha256
from metaembed.serving.build import build_index
from metaembed.serving.sidecar import SIDECAR, read_sidecar
from metaembed.serving.corpus import read_corpus
from metaembed.serving.searcher import Searcher


def test_the_command_indexes_a_plain_folder_and_records_model_corpus_and_skips(saved_model, make_plain_corpus,
                                                                               tmp_path, capsys):
    folder = make_plain_corpus()
    (folder / "broken.png").write_bytes(b"\x89PNG truncated")
    out = tmp_path / "index"

    code = main(["index", "build", "--model", str(saved_model), "--corpus", str(folder), "--out", str(out),
                 "--on-bad", "skip", "--dtype", "int8", "--first-stage", "none", "--no-progress"])

    printed = capsys.readouterr().out
    assert code == 0, printed
    assert f"{folder}: plain layout, 6 candidates" in printed
    assert "skipped 1 unreadable candidate(s)" in printed and "broken.png: cannot decode image" in printed
    assert "ignored 1 file(s) that are neither images nor .txt: notes.pdf" in printed
    assert f"saved 6 candidates to {out} (int8, no first stage)" in printed
    index = MultiVectorIndex.load(out)
    assert (len(index), index.dims[1:], index.dtype, index.first_stage) == (6, (8, 128), "int8", None)
    meta = index.meta
    assert meta["model_uri"] == str(saved_model.resolve())
    assert meta["model_sha256"] == folder_sha256(saved_model)
    assert meta["corpus_path"] == str(folder.resolve()) and meta["corpus_sha256"] == folder_sha256(folder)
    assert (meta["layout"], meta["candidates"], meta["skipped"], meta["ignored"]) == ("plain", "6", "1", "1")
    assert "model_version" not in meta  # a folder, not a registry version
    sidecar = read_sidecar(out)
    assert sidecar["display"]["notes/doc2.txt"] == "a blue square" and len(sidecar["display"]) == 6
    assert sidecar["skipped"][0]["item"] == "broken.png" and sidecar["ignored"] == ["notes.pdf"]
    # The sidecar is saved with the index: listed, with its sha256, in the manifest.
    assert SIDECAR in json.loads((out / "manifest.json").read_text())["files"]


def test_several_first_stage_vectors_with_the_mean_pool_are_refused_before_any_work(tmp_path, capsys):
    code = main(["index", "build", "--model", str(tmp_path / "no-model"), "--corpus", str(tmp_path / "no-corpus"),
                 "--out", str(tmp_path / "index"), "--first-stage-vectors", "4", "--no-progress"])
    assert code == 1
    assert "--first-stage-vectors needs --first-stage-pool first" in capsys.readouterr().out
    assert not (tmp_path / "index").exists()


def test_an_unreadable_file_stops_the_build_before_the_model_loads(make_plain_corpus, tmp_path, capsys):
    folder = make_plain_corpus()
    (folder / "bad.txt").write_bytes(b"\xff\xfe\xfa")
    out = tmp_path / "index"

    code = main(["index", "build", "--model", str(tmp_path / "no-model-here"), "--corpus", str(folder),
                 "--out", str(out), "--no-progress"])

    printed = capsys.readouterr().out
    assert code == 1
    assert "bad.txt: not valid UTF-8" in printed and "--on-bad skip" in printed
    assert not out.exists()


def test_the_real_vidore_sample_builds_and_searches(pinned, vidore_sample, tmp_path):
    out = tmp_path / "vidore-index"
    built = build_index(pinned, read_corpus(vidore_sample), out, first_stage="hnsw", progress=False)

    assert built.link_tag is None and len(built.index) == 3
    assert built.index.meta["layout"] == "vidore-beir"
    searcher = Searcher.open(out)
    result = searcher.search("Which figure shows the training loss?", budget=(2, 4), k=3, first_stage_k=3)
    assert sorted(hit.id for hit in result.hits) == ["0", "1", "2"]
    assert [hit.rank for hit in result.hits] == [1, 2, 3]
    assert all(hit.display.startswith(f"page {hit.id} (embedded image") for hit in result.hits)
    scores = [hit.score for hit in result.hits]
    assert scores == sorted(scores, reverse=True)
