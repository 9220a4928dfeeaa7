from __future__ import annotations

import random

import pytest
import pytrec_eval

from metaembed.data.records import ImageRef, RetrievalSet
from metaembed.evaluation import vidore
from metaembed.evaluation.quality import evaluate_model, plan_suite
from metaembed.evaluation.suite import VidoreSet, distinct_vidore, load_folders


def _random_case(seed: int, queries: int = 30, pages: int = 25):
    rng = random.Random(seed)
    qrels, run = {}, {}
    for q in range(queries):
        relevant = rng.sample(range(pages), rng.randint(1, 4))
        # Graded, several relevant pages per query, as in ViDoRe v2.
        qrels[f"q{q}"] = {f"d{p}": rng.choice([1, 2, 3]) for p in relevant}
        run[f"q{q}"] = {f"d{p}": rng.random() for p in range(pages)}
    return qrels, run


@pytest.mark.slow  # ranx compiles its numba kernels on first use (~30 s once, then cached)
def test_metrics_agree_with_ranx_on_random_graded_runs():
    ranx = pytest.importorskip("ranx")
    for seed in range(3):
        qrels, run = _random_case(seed)
        ours = vidore.trec_metrics(qrels, run, [1, 5, 10])
        theirs = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), ["ndcg@5", "recall@1", "recall@5", "recall@10",
                                                                  "mrr@10"])
        assert ours["ndcg_at_5"] == pytest.approx(theirs["ndcg@5"], abs=1e-6)
        assert ours["mrr_at_10"] == pytest.approx(theirs["mrr@10"], abs=1e-6)
        for k in (1, 5, 10):
            assert ours[f"recall_at_{k}"] == pytest.approx(theirs[f"recall@{k}"], abs=1e-6)
        assert ours["queries"] == 30


def test_mrr_at_10_cuts_where_trec_eval_ranks_and_ndcg_is_pytrec_evals():
    qrels = {"a": {"d11": 1}, "b": {"d1": 1}}
    # a: the relevant page is 11th of 12 -> 0; b: 3rd -> 1/3.
    run = {"a": {f"d{i:02d}" if i < 10 else f"d{i}": 1.0 - i / 100 for i in range(12)},
           "b": {"d0": 0.9, "d2": 0.8, "d1": 0.7, "d3": 0.1}}
    run["a"]["d11"] = 0.895
    metrics = vidore.trec_metrics(qrels, run, [5])
    assert metrics["mrr_at_10"] == pytest.approx((0.0 + 1 / 3) / 2)
    reference = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.5"}).evaluate(run)
    assert metrics["ndcg_at_5"] == pytest.approx(sum(v["ndcg_cut_5"] for v in reference.values()) / 2, abs=1e-12)


def test_fractional_grades_are_refused_with_the_set_and_query():
    with pytest.raises(ValueError, match=r"set S: qrels grade 0.5 \(query q1, page d2\)"):
        vidore.integer_qrels("S", {"q1": {"d2": 0.5}})
    assert vidore.integer_qrels("S", {"q1": {"d2": 2.0}}) == {"q1": {"d2": 2}}


def _set(name, layout, queries):
    page = ImageRef(data=b"page")
    return VidoreSet(name, layout, RetrievalSet(name, {"p": page}, dict(enumerate(queries)), {}))


def test_a_v1_set_shipped_in_both_layouts_counts_once():
    sets = [_set("docvqa_test_subsampled", "qa", ["x", "y"]), _set("docvqa_test_subsampled_beir", "beir", ["y", "x"]),
            _set("other", "qa", ["z"]), _set("other_beir", "beir", ["w"])]
    counted, duplicates = distinct_vidore(sets)
    assert [s.name for s in counted] == ["docvqa_test_subsampled_beir", "other", "other_beir"]
    assert duplicates == {"docvqa_test_subsampled": "docvqa_test_subsampled_beir"}


def test_generated_qa_and_beir_copies_score_alike_and_count_once(eval_prepared, fake_model):
    from metaembed.evaluation.suite import load_prepared

    report, _ = evaluate_model(fake_model("hashed"), load_prepared(eval_prepared), [(2, 4)], progress=False)
    sets = report.vidore["2x4"]
    qa, beir = sets["synth_reports_test_subsampled"], sets["synth_reports_test_subsampled_beir"]
    # Same pages and queries, other ids: only tie-breaking by id could tell them apart.
    assert qa["ndcg_at_5"] == pytest.approx(beir["ndcg_at_5"], abs=1e-9)
    assert report.sets["vidore"]["synth_reports_test_subsampled"]["counted_as"] == "synth_reports_test_subsampled_beir"
    expected = (beir["ndcg_at_5"] + sets["synth_reports_v2"]["ndcg_at_5"]) / 2
    assert report.summary["2x4"]["vidore_ndcg_at_5"] == pytest.approx(expected)


def test_the_real_vidore_sample_runs_end_to_end(vidore_sample, saved_model):
    from metaembed.model import MetaEmbed

    suite = load_folders(vidore_folders=[vidore_sample])
    assert [(s.name, s.layout, len(s.data.queries), len(s.data.corpus)) for s in suite.vidore] == \
        [("v1_beir_arxivqa_mini", "beir", 2, 3)]
    model = MetaEmbed.from_pretrained(saved_model)
    report, stores = evaluate_model(model, suite, [(1, 1), (4, 8)], progress=False)

    plan = plan_suite(suite).vidore[0]
    scores = vidore.score_set(plan, stores["query"], stores["candidate"], {"4x8": (4, 8)})["4x8"]
    run = vidore.to_run(plan, scores)
    reference = pytrec_eval.RelevanceEvaluator({q: {d: int(s) for d, s in docs.items()} for q, docs in
                                                suite.vidore[0].data.qrels.items()}, {"ndcg_cut.5"}).evaluate(run)
    metrics = report.vidore["4x8"]["v1_beir_arxivqa_mini"]
    assert metrics["queries"] == 2 and metrics["unjudged_queries"] == 0
    assert metrics["ndcg_at_5"] == pytest.approx(sum(v["ndcg_cut_5"] for v in reference.values()) / 2, abs=1e-12)
    assert 0 < report.summary["4x8"]["vidore_ndcg_at_5"] <= 1
    assert report.summary["1x1"]["vidore_recall_at_5"] == 1.0  # 3 pages: every relevant one is in the top 5
    assert "mmeb_p_at_1" not in report.summary["1x1"]
