from __future__ import annotations

import json

import pytest

from metaembed.config import load_root
from metaembed.evaluation.stage import run_evaluate
from metaembed.evaluation.sweep import budget_costs, run_sweep
from metaembed.stage_outputs import SweepBudgets


def test_sweep_rescores_the_saved_embeddings_and_writes_the_budget_table(eval_params, mlflow_run, tmp_path):
    path = eval_params(mlflow=True)
    evaluated = run_evaluate(load_root(path), progress=False)
    result = run_sweep(load_root(path), progress=False)

    # What registration and the gate read back is what the sweep measured.
    assert SweepBudgets.read(tmp_path / "sweep" / "budgets.json") == result
    assert result.mlflow_run_id == mlflow_run["run_id"] and result.quality_metric == "mmeb_p_at_1"
    rows = {row.name: row for row in result.budgets}
    assert list(rows) == ["1x1", "2x4", "4x8"]
    for name, row in rows.items():  # re-scored from the cache: the same numbers as evaluate
        assert row.quality["mmeb_p_at_1"] == pytest.approx(evaluated["budgets"][name]["mmeb_p_at_1"])
        assert 0 <= row.quality["vidore_ndcg_at_5"] <= 1
        assert set(row.latency_ms_per_query) == {"100", "1000"} and min(row.latency_ms_per_query.values()) > 0
        assert set(row.encode_per_second) == {"query", "candidate"} and min(row.encode_per_second.values()) > 0
    assert rows["4x8"].index_bytes_per_candidate == {"float32": 8 * 128 * 4, "bfloat16": 8 * 128 * 2}
    assert rows["4x8"].flops_per_pair == 4 * 8 * 255
    best = max(row.quality["mmeb_p_at_1"] for row in rows.values())
    assert rows["1x1"].pareto  # the cheapest budget is never dominated
    assert any(row.pareto and row.quality["mmeb_p_at_1"] == best for row in rows.values())

    out = tmp_path / "sweep"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["budgets"]["2x4"]["latency_ms_1000"] == rows["2x4"].latency_ms_per_query["1000"]
    assert json.loads((out / "plot_data.json").read_text())[0]["budget"] == "1x1"
    assert len(json.loads((out / "latency.json").read_text())["budgets"]["4x8"][0]["times_s"]) == 2
    for name in ("quality_vs_budget.png", "quality_vs_index_size.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    client = mlflow_run["client"]
    logged = client.get_run(mlflow_run["run_id"]).data.metrics
    assert logged["sweep/4x8/flops_per_pair"] == 4 * 8 * 255 and "sweep/1x1/latency_ms_100" in logged
    assert {"sweep/budgets.json", "sweep/latency.json", "sweep/plots"} <= \
        {a.path for a in client.list_artifacts(mlflow_run["run_id"], "sweep")}


def test_sweep_refuses_a_missing_or_stale_embedding_cache(eval_params, tmp_path, backbone_params):
    path = eval_params()
    with pytest.raises(FileNotFoundError, match="no embedding cache"):
        run_sweep(load_root(path), progress=False)
    run_evaluate(load_root(path), progress=False)
    (tmp_path / "evaluate" / "embeddings" / "embeddings.json").write_text(
        json.dumps({"format": 1, "encoder": "another model", "keys": {"query": [], "candidate": []}}))
    with pytest.raises(ValueError, match="embeddings of another model"):
        run_sweep(load_root(path), progress=False)


def test_token_level_costs_use_the_mean_number_of_vectors():
    costs = budget_costs({"query": 10.5, "candidate": 60.25}, 128)
    assert costs == {"index_bytes_per_candidate": {"float32": round(60.25 * 128 * 4), "bfloat16": round(60.25 * 256)},
                     "flops_per_pair": round(10.5 * 60.25 * 255)}
    assert budget_costs({"query": 16, "candidate": 64}, 3584)["index_bytes_per_candidate"]["bfloat16"] == 64 * 3584 * 2
