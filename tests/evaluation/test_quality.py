from __future__ import annotations

import pytest

from metaembed.evaluation.params import EvaluateParams
from metaembed.evaluation.quality import BudgetError, evaluate_model, scoring_budgets
from metaembed.evaluation.suite import load_prepared


def test_budgets_apply_to_meta_tokens_only():
    assert scoring_budgets("meta", [(1, 1), (4, 8)], 4, 8) == {"1x1": (1, 1), "4x8": (4, 8)}
    assert scoring_budgets("last", [(1, 1), (4, 8)], 1, 1) == {"1x1": None}
    assert scoring_budgets("tokens", [(16, 64)], None, None) == {"tokens": None}
    with pytest.raises(BudgetError, match=r"evaluate.budgets: budget \[16, 64\] exceeds the model's 4 query"):
        scoring_budgets("meta", [(16, 64)], 4, 8)


def test_bad_evaluate_params_name_the_key():
    from metaembed.config import ParamsError, section

    with pytest.raises(ParamsError, match=r"evaluate.budgets: .*listed twice"):
        section({"evaluate": {"budgets": [[1, 1], [1, 1]]}}, "evaluate", EvaluateParams)
    with pytest.raises(ParamsError, match="evaluate.recall_at"):
        section({"evaluate": {"recall_at": [0]}}, "evaluate", EvaluateParams)
    with pytest.raises(ParamsError, match="evaluate.batchsize"):
        section({"evaluate": {"batchsize": 3}}, "evaluate", EvaluateParams)


def test_the_tiny_model_is_scored_at_every_budget_with_chance_beside(eval_prepared, saved_model):
    from metaembed.model import MetaEmbed

    model = MetaEmbed.from_pretrained(saved_model)
    report, stores = evaluate_model(model, load_prepared(eval_prepared), [(1, 1), (2, 4), (4, 8)], progress=False)
    assert list(report.summary) == ["1x1", "2x4", "4x8"]
    for summary in report.summary.values():
        for key in ("mmeb_p_at_1", "mmeb_twin_accuracy", "mmeb_p_at_1_in_distribution",
                    "mmeb_p_at_1_out_of_distribution", "mmeb_p_at_1_retrieval", "vidore_ndcg_at_5",
                    "vidore_recall_at_5", "vidore_mrr_at_10"):
            assert 0.0 <= summary[key] <= 1.0, key
    assert set(report.chance) >= {"mmeb_p_at_1", "mmeb_twin_accuracy", "vidore_ndcg_at_5"}
    assert report.budgets["2x4"] == {"r_q": 2, "r_c": 4, "vectors": {"query": 2, "candidate": 4}}
    assert len(report.mmeb["4x8"]) == 9 and len(report.vidore["4x8"]) == 3
    assert stores["candidate"].vectors.shape[1:] == (8, model.dim)


def test_a_token_level_model_is_scored_in_full(eval_prepared, make_model):
    model = make_model(pooling="tokens").eval()
    suite = load_prepared(eval_prepared)
    suite.mmeb, suite.vidore = suite.mmeb[:1], suite.vidore[-1:]
    report, stores = evaluate_model(model, suite, [(1, 1)], progress=False)
    assert list(report.summary) == ["tokens"]
    vectors = report.budgets["tokens"]["vectors"]
    assert vectors["candidate"] == pytest.approx(stores["candidate"].lengths.double().mean().item())
    assert vectors["candidate"] > 8 and 0 <= report.summary["tokens"]["mmeb_p_at_1"] <= 1


def test_a_raw_mmeb_eval_folder_scores_like_its_prepared_copy(eval_prepared, fake_model):
    from metaembed.evaluation.suite import load_folders

    raw = eval_prepared.parent / "raw" / "mmeb-eval"
    folder = load_folders(mmeb_roots=[raw])
    prepared = load_prepared(eval_prepared)
    prepared.vidore = []
    assert [s.name for s in folder.mmeb] == [s.name for s in prepared.mmeb]
    from_folder, _ = evaluate_model(fake_model("hashed"), folder, [(2, 4)], progress=False)
    from_prepared, _ = evaluate_model(fake_model("hashed"), prepared, [(2, 4)], progress=False)
    for name in ("mmeb_p_at_1", "mmeb_twin_accuracy"):
        assert from_folder.summary["2x4"][name] == pytest.approx(from_prepared.summary["2x4"][name])
