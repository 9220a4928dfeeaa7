from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from metaembed.config import ParamsError, validate_params
from metaembed.experiments import baselines

REPO = Path(__file__).resolve().parents[2]


def test_each_run_gets_its_seed_and_its_own_folders(tmp_path):
    run_dir = tmp_path / "no_mmr" / "seed2"
    params = baselines.run_params(yaml.safe_load((REPO / "params.yaml").read_text()), {"loss.mmr": False}, 2,
                                  run_dir, {"train.max_steps": 40})
    assert params["train"]["seed"] == 2 and params["train"]["max_steps"] == 40 and params["loss"]["mmr"] is False
    root = validate_params(params)
    assert root.model_dir == run_dir / "model"
    assert root.train_report_path == run_dir / "train" / "metrics.json"  # what its evaluation logs onto
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


def _side_params(tmp_path: Path, name: str, temperature: float) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["loss"]["temperature"] = temperature
    path = tmp_path / name
    path.write_text(yaml.safe_dump(params))
    return path


def test_the_comparison_is_tagged_with_the_file_it_was_given(tmp_path):
    tags = []
    for name, temperature in (("a.yaml", 0.09), ("b.yaml", 0.03)):
        options = baselines.BaselinesOptions(params_path=_side_params(tmp_path, name, temperature))
        tags.append(baselines._provenance(baselines.load_params(options.params_path), options, {"metaembed": {}}, [0]))
    # Before: the parent run and the results document hashed the project's params.yaml for both.
    assert tags[0]["params.hash"] != tags[1]["params.hash"]
    assert [t["params.path"] for t in tags] == [str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]


def test_a_bad_variant_stops_before_any_run_trains(tmp_path, monkeypatch):
    path = _side_params(tmp_path, "params.yaml", 0.09)
    params = yaml.safe_load(path.read_text())
    params["baselines"]["variants"] = {"metaembed": {}, "typo": {"loss.temprature": 0.05}}
    path.write_text(yaml.safe_dump(params))
    trained = []
    monkeypatch.setattr(baselines, "_run_one", lambda *args: trained.append(args))
    options = baselines.BaselinesOptions(params_path=path, out_dir=tmp_path / "out", log_to_mlflow=False)
    with pytest.raises(ParamsError, match=r"variant typo, seed 0.*loss\.temprature: unknown key"):
        baselines.run_baselines(options)
    assert trained == []  # before: `metaembed` seed 0 trained first, then `typo` failed
