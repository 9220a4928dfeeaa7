from __future__ import annotations

import pytest

from metaembed.config import ParamsError
from metaembed.evaluation import baselines


def test_overrides_set_dotted_keys_on_a_copy():
    base = {"model": {"pooling": "meta", "lora": {"r": 32}}, "train": {"seed": 0}}
    out = baselines.apply_overrides(base, {"model.pooling": "last", "model.lora.r": 8, "evaluate.batch_size": 4})
    assert out == {"model": {"pooling": "last", "lora": {"r": 8}}, "train": {"seed": 0}, "evaluate": {"batch_size": 4}}
    assert base["model"]["pooling"] == "meta"
    with pytest.raises(ParamsError, match="override train.seed.x: seed is a value"):
        baselines.apply_overrides(base, {"train.seed.x": 1})
    assert baselines.parse_override("train.max_steps=4") == ("train.max_steps", 4)
    assert baselines.parse_override("loss.groups=[[1, 1, 1.0]]") == ("loss.groups", [[1, 1, 1.0]])
    with pytest.raises(ValueError, match="SECTION.KEY=VALUE"):
        baselines.parse_override("max_steps=4")


def test_each_run_gets_its_seed_and_its_own_folders(tmp_path):
    params = baselines.run_params({"train": {"seed": 0, "max_steps": 300}}, {"loss.mmr": False}, 2,
                                  tmp_path / "no_mmr" / "seed2", {"train.max_steps": 4})
    assert params["train"]["seed"] == 2 and params["train"]["max_steps"] == 4 and params["loss"]["mmr"] is False
    assert params["train"]["output_dir"] == str(tmp_path / "no_mmr" / "seed2" / "model")
    assert params["evaluate"]["train_report"] == str(tmp_path / "no_mmr" / "seed2" / "train" / "metrics.json")
    assert baselines.role(params) == "no_mmr"
    assert baselines.role({"model": {"pooling": "tokens"}}) == "token_level"
    assert baselines.role({"model": {"pooling": "last"}, "loss": {"mmr": False}}) == "single_vector"
    assert baselines.role({}) == "metaembed"


def _run(variant, role, seed, quality, budgets, vectors=None):
    """A run as `_run_one` returns it, with a made-up evaluation report."""
    summary = {b: {"mmeb_p_at_1": q, "vidore_ndcg_at_5": q / 2} for b, q in zip(budgets, quality)}
    shapes = {b: {"vectors": vectors or dict(zip(("query", "candidate"), map(int, b.split("x"))))} for b in budgets}
    return {"variant": variant, "role": role, "seed": seed, "report": {"summary": summary, "budgets": shapes,
            "chance": {"mmeb_p_at_1": 0.01}, "model": {"dim": 128}}}


def _runs(meta_quality=(0.20, 0.30, 0.40), no_mmr_1x1=0.10):
    budgets = ["1x1", "4x8", "16x64"]
    runs = []
    for seed, jitter in enumerate((-0.01, 0.0, 0.01)):
        runs.append(_run("metaembed", "metaembed", seed, [q + jitter for q in meta_quality], budgets))
        runs.append(_run("no_mmr", "no_mmr", seed, [no_mmr_1x1 + jitter, 0.3, 0.41], budgets))
        runs.append(_run("single", "single_vector", seed, [0.25 + jitter], ["1x1"]))
        runs.append(_run("tokens", "token_level", seed, [0.42 + jitter], ["tokens"],
                         {"query": 12.0, "candidate": 70.5}))
    return runs


def test_aggregate_gives_mean_spread_and_costs_per_variant_and_budget():
    rows, chance = baselines.aggregate(_runs())
    row = next(r for r in rows if r["variant"] == "metaembed" and r["budget"] == "4x8")
    assert row["quality"]["mmeb_p_at_1"]["mean"] == pytest.approx(0.30)
    assert row["quality"]["mmeb_p_at_1"]["std"] == pytest.approx(0.01)  # sample std of -0.01, 0, +0.01
    assert row["seeds"] == 3 and row["index_bytes_per_candidate"]["bfloat16"] == 8 * 128 * 2
    tokens = next(r for r in rows if r["variant"] == "tokens")
    assert tokens["index_bytes_per_candidate"]["bfloat16"] == round(70.5 * 256) and chance == {"mmeb_p_at_1": 0.01}


def test_directions_report_holds_and_does_not_hold_with_numbers():
    rows, _ = baselines.aggregate(_runs())
    found = {(d["claim"], d["metric"]): d for d in baselines.check_directions(rows)}
    rises = found[("quality rises with budget (MetaEmbed)", "MMEB P@1")]
    assert rises["verdict"] == "holds" and rises["evidence"].startswith("1x1 20.0 ± 1.0 -> 4x8 30.0 ± 1.0")
    assert found[("MMR beats no-MMR at (1,1)", "MMEB P@1")]["verdict"] == "holds"
    assert found[("MetaEmbed at its largest budget beats the single vector", "MMEB P@1")]["verdict"] == "holds"
    close = found[("MetaEmbed gets close to token-level quality at a fraction of its index size", "MMEB P@1")]
    assert close["verdict"].startswith("does not hold: token-level is ahead")
    assert close["index_fraction"] == pytest.approx(64 / 70.5)

    rows, _ = baselines.aggregate(_runs(meta_quality=(0.20, 0.45, 0.41), no_mmr_1x1=0.20))
    found = {(d["claim"], d["metric"]): d for d in baselines.check_directions(rows)}
    assert found[("quality rises with budget (MetaEmbed)", "MMEB P@1")]["verdict"].startswith("partly")
    assert found[("MMR beats no-MMR at (1,1)", "MMEB P@1")]["verdict"] == "does not hold"
    close = found[("MetaEmbed gets close to token-level quality at a fraction of its index size", "MMEB P@1")]
    assert close["verdict"] == "holds" and close["budget"] == "4x8"  # the best budget, not the largest


def test_closeness_to_token_level_counts_only_budgets_with_a_smaller_index():
    def close(token_candidate_vectors):
        runs = [r for r in _runs(meta_quality=(0.20, 0.30, 0.50)) if r["role"] != "token_level"]
        runs += [_run("tokens", "token_level", seed, [0.42], ["tokens"], {"query": 12.0, "candidate": vectors})
                 for seed, vectors in enumerate([token_candidate_vectors] * 3)]
        rows, _ = baselines.aggregate(runs)
        return next(d for d in baselines.check_directions(rows) if d["claim"].startswith("MetaEmbed gets close"))

    tokens_between = close(32.0)  # 16x64 (64 vectors) costs more than token-level, 4x8 (8) less
    assert tokens_between["budget"] == "4x8" and tokens_between["index_fraction"] == pytest.approx(8 / 32)
    assert tokens_between["verdict"].startswith("does not hold: token-level is ahead")
    tokens_tiny = close(0.5)
    assert tokens_tiny["verdict"] == "does not hold: no MetaEmbed budget has a smaller index"


def test_missing_variants_are_reported_as_not_measured():
    rows, _ = baselines.aggregate([r for r in _runs() if r["role"] == "metaembed"])
    verdicts = [d["verdict"] for d in baselines.check_directions(rows)]
    assert verdicts.count("not measured (a variant is missing)") == 6


def test_the_results_document_is_rewritten_between_its_markers_only(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text(f"# Results\n\nintro\n\n{baselines.BEGIN}\nold table\n{baselines.END}\n\n## Analysis\nkept\n")
    baselines.write_doc(doc, "new table")
    expected = f"# Results\n\nintro\n\n{baselines.BEGIN}\nnew table\n{baselines.END}\n\n## Analysis\nkept\n"
    assert doc.read_text() == expected
    fresh = tmp_path / "other.md"
    baselines.write_doc(fresh, "table")
    assert f"{baselines.BEGIN}\ntable\n{baselines.END}" in fresh.read_text()
