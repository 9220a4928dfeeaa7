"""Searching a built index: exact budgeted MaxSim of the model's own encodings, input checks, and
the refusal to answer with a model that changed since the build."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image

from metaembed.cli import main
from metaembed.images import ImageDecodeError
from metaembed.registry.load import load_pinned
from metaembed.scoring import maxsim
from metaembed.serving.budget import BudgetError
from metaembed.serving.build import build_index
from metaembed.serving.corpus import read_corpus
from metaembed.serving.searcher import QueryError


def test_results_are_the_models_budgeted_maxsim_best_first(searcher, pinned, plain_corpus):
    corpus = read_corpus(plain_corpus)
    model = pinned.model
    with torch.inference_mode():
        query, _ = model.encode_queries(["a blue square"], budget=2)
        texts = [c.side.text or None for c in corpus.candidates]
        images = [str(c.side.image.path) if c.side.image else None for c in corpus.candidates]
        candidates, _ = model.encode_candidates(texts, images)
    expected = maxsim(query, candidates, budget=(2, 4))[0]

    result = searcher.search("a blue square", budget=(2, 4), k=6)

    assert result.budget == (2, 4) and len(result.hits) == 6
    by_id = {c.id: float(score) for c, score in zip(corpus.candidates, expected)}
    for hit in result.hits:
        assert hit.score == pytest.approx(by_id[hit.id], abs=1e-4)  # float32 index: only batching differs
    assert [hit.score for hit in result.hits] == sorted((hit.score for hit in result.hits), reverse=True)
    assert {hit.id: hit.display for hit in result.hits}["notes/doc2.txt"] == "a blue square"


def test_searches_are_deterministic_and_the_first_stage_agrees_when_it_keeps_everything(searcher):
    first = searcher.search("bread", budget=(4, 8), k=3)
    again = searcher.search("bread", budget=(4, 8), k=3)
    shortlisted = searcher.search("bread", budget=(4, 8), k=3, first_stage_k=6)  # flat, all 6 rows

    assert [(h.id, h.score) for h in first.hits] == [(h.id, h.score) for h in again.hits]
    assert [h.id for h in shortlisted.hits] == [h.id for h in first.hits]
    assert searcher.search("bread").budget == (4, 8)  # no budget: full size


def test_an_image_query_is_searched_and_a_broken_one_named(searcher, tmp_path):
    image = tmp_path / "query.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(image)
    result = searcher.search(None, str(image), budget=(1, 1), k=2)
    assert len(result.hits) == 2 and result.budget == (1, 1)

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG nope")
    with pytest.raises(ImageDecodeError, match=f"cannot decode image .*{broken}"):
        searcher.search("with a picture", str(broken))


@pytest.mark.parametrize("kwargs, error, message", [
    ({"text": "  "}, QueryError, "empty query"),
    ({"text": None}, QueryError, "empty query"),
    ({"text": "x", "k": 0}, QueryError, r"k=0 is out of range: ask for 1\.\.1000"),
    ({"text": "x", "k": 5, "first_stage_k": 4}, QueryError, "first_stage_k=4 is out of range"),
    ({"text": "x", "budget": (5, 8)}, BudgetError, r"r_q must be in 1\.\.4"),
    ({"text": "x", "budget": (4, 9)}, BudgetError, r"r_c in 1\.\.8"),
])
def test_a_query_that_cannot_run_says_why(searcher, kwargs, error, message):
    with pytest.raises(error, match=message):
        searcher.search(**kwargs)


def test_the_command_prints_ranked_results(plain_index, capsys):
    assert main(["search", "--index", str(plain_index), "--budget", "2x4", "--k", "3", "--json",
                 "a red circle on a white page"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["budget"] == [2, 4] and [hit["rank"] for hit in printed["results"]] == [1, 2, 3]
    assert set(printed["results"][0]) == {"rank", "id", "score", "display"}

    assert main(["search", "--index", str(plain_index), "--budget", "4by8", "query"]) == 2
    assert "is not RQxRC" in capsys.readouterr().out


def test_a_model_changed_since_the_build_is_refused(saved_model, plain_corpus, tmp_path, capsys):
    model = shutil.copytree(saved_model, tmp_path / "model")
    out = tmp_path / "index"
    build_index(load_pinned(model), read_corpus(plain_corpus), out, first_stage=None, progress=False)
    with (model / "metaembed_config.json").open("a") as handle:
        handle.write("\n")  # still loads, but is no longer the model that encoded the index

    assert main(["search", "--index", str(out), "a blue square"]) == 1
    printed = capsys.readouterr().out
    assert f"{out} was built with {model}" in printed and "Rebuild the index" in printed
