from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from metaembed.data.records import EvalQuery, Side
from metaembed.evaluation import mmeb
from metaembed.evaluation.encode import EmbeddingStore, Requests
from metaembed.evaluation.quality import evaluate_model
from metaembed.evaluation.suite import MmebSubset, load_prepared


def test_a_constant_model_scores_chance_not_the_argmax_100_percent(eval_prepared, fake_model):
    suite = load_prepared(eval_prepared)
    report, stores = evaluate_model(fake_model("constant"), suite, [(1, 1), (4, 8)], progress=False)

    for budget in ("1x1", "4x8"):
        summary = report.summary[budget]
        assert summary["mmeb_p_at_1"] == pytest.approx(report.chance["mmeb_p_at_1"], abs=1e-12)
        assert summary["mmeb_twin_accuracy"] == pytest.approx(report.chance["mmeb_twin_accuracy"], abs=1e-12)
        for split in ("in_distribution", "out_of_distribution"):
            assert summary[f"mmeb_p_at_1_{split}"] == pytest.approx(report.chance[f"mmeb_p_at_1_{split}"], abs=1e-12)
    # 10 candidates per query here: chance is 1/10, and an argmax would have said 100%.
    assert report.chance["mmeb_p_at_1"] == pytest.approx(0.1)
    assert report.chance["mmeb_twin_accuracy"] > report.chance["mmeb_p_at_1"]


def test_each_distinct_input_is_encoded_once(eval_prepared, fake_model):
    suite = load_prepared(eval_prepared)
    slots = sum(len(q.candidates) for s in suite.mmeb for q in s.queries)
    model = fake_model("hashed")
    report, stores = evaluate_model(model, suite, [(1, 1)], progress=False)
    distinct = {(c.text, c.image.fingerprint() if c.image else None) for s in suite.mmeb for q in s.queries
                for c in q.candidates}
    pages = {p.fingerprint() for v in suite.vidore for p in v.data.corpus.values()}
    assert len(stores["candidate"].keys) == len(distinct | {("", p) for p in pages}) < slots
    assert report.sets["encoded"]["candidate"] == len(stores["candidate"].keys)
    assert model.encoded == len(stores["candidate"].keys) + len(stores["query"].keys)


def _subset(twins=(1, 2)) -> MmebSubset:
    query = EvalQuery("S", 0, Side("q"), tuple(Side(f"c{i}") for i in range(5)), twins)
    return MmebSubset("S", "retrieval", "in_distribution", [query])


def _stores(plan, query_vector, candidate_vectors):
    q = EmbeddingStore(plan.query_keys, query_vector.view(1, 1, -1), torch.tensor([1]))
    c = EmbeddingStore(plan.candidate_keys[0], candidate_vectors.unsqueeze(1), torch.ones(5, dtype=torch.long))
    return q, c


def test_precision_and_twin_accuracy_measure_different_things():
    plan = mmeb.plan_subset(_subset(), Requests())
    basis = torch.eye(5)
    # The positive wins outright: both metrics are 1.
    q, c = _stores(plan, basis[0], basis + 0.5 * basis[0])
    scores = mmeb.score_subset(plan, q, c, {"1x1": (1, 1)})["1x1"]
    assert mmeb.subset_metrics(plan, scores, 1.0) == pytest.approx(
        {"p_at_1": 1.0, "twin_accuracy": 1.0, "queries": 1, "twin_queries": 1, "chance_p_at_1": 0.2,
         "chance_twin_accuracy": 1 / 3})
    # A non-twin candidate (index 4) wins: P@1 is 0 but the positive still beats its twins.
    candidates = torch.stack([basis[0] * 0.9, basis[1] * 0.1, basis[2] * 0.1, basis[3], basis[0]])
    q, c = _stores(plan, basis[0], candidates)
    metrics = mmeb.subset_metrics(plan, mmeb.score_subset(plan, q, c, {"1x1": (1, 1)})["1x1"], 1.0)
    assert metrics["p_at_1"] == 0.0 and metrics["twin_accuracy"] == 1.0


def test_ties_within_float_noise_are_shared():
    scores = torch.tensor([[0.7, 0.7 + 1e-9, 0.3, 0.7 - 1e-9]], dtype=torch.float64)
    snapped = mmeb.snap_ties(scores, 1.0)
    assert snapped.tolist() == [[0.7 + 1e-9, 0.7 + 1e-9, 0.3, 0.7 + 1e-9]]
    plan = mmeb.plan_subset(_subset(twins=None), Requests())
    assert mmeb.subset_metrics(plan, [torch.tensor([0.5, 0.5 + 1e-8, 0.1, 0.2, 0.5])], 1.0)["p_at_1"] == \
        pytest.approx(1 / 3)
    # A real gap is not a tie.
    assert mmeb.subset_metrics(plan, [torch.tensor([0.5, 0.5001, 0.1, 0.2, 0.3])], 1.0)["p_at_1"] == 0.0


def test_means_are_over_subsets_per_split_and_meta_task():
    info = {name: SimpleNamespace(split=split, meta_task=task) for name, split, task in
            [("A", "in_distribution", "vqa"), ("B", "in_distribution", "retrieval"),
             ("C", "out_of_distribution", "retrieval")]}
    subsets = {"A": {"p_at_1": 0.9, "twin_accuracy": 0.5}, "B": {"p_at_1": 0.3}, "C": {"p_at_1": 0.0}}
    summary = mmeb.summarise(subsets, info)
    assert summary == pytest.approx({"mmeb_p_at_1": 0.4, "mmeb_twin_accuracy": 0.5,
                                     "mmeb_p_at_1_in_distribution": 0.6, "mmeb_p_at_1_out_of_distribution": 0.0,
                                     "mmeb_p_at_1_retrieval": 0.15, "mmeb_p_at_1_vqa": 0.9})
