from __future__ import annotations

import json

import pytest

from metaembed.config import load_root
from metaembed.evaluation.stage import run_evaluate
from metaembed.tracking.provenance import folder_hash

PNG = b"\x89PNG\r\n\x1a\n"


def test_evaluate_writes_dvc_metrics_plots_and_logs_onto_the_training_run(eval_params, mlflow_run, tmp_path):
    params = load_root(eval_params(mlflow=True))
    metrics = run_evaluate(params, progress=False)

    out = tmp_path / "evaluate"
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["mlflow_run_id"] == mlflow_run["run_id"]
    assert list(metrics["budgets"]) == ["1x1", "2x4", "4x8"]
    assert 0 <= metrics["budgets"]["4x8"]["mmeb_p_at_1"] <= 1 and metrics["chance"]["mmeb_p_at_1"] == pytest.approx(0.1)
    report = json.loads((out / "report.json").read_text())
    assert set(report["mmeb"]["1x1"]) == set(report["sets"]["mmeb"]) and len(report["sets"]["mmeb"]) == 9
    assert (out / "quality_by_budget.png").read_bytes()[:8] == PNG
    assert (out / "embeddings" / "embeddings.safetensors").is_file()

    client = mlflow_run["client"]
    logged = client.get_run(mlflow_run["run_id"]).data.metrics
    assert logged["eval/4x8/mmeb_p_at_1"] == pytest.approx(metrics["budgets"]["4x8"]["mmeb_p_at_1"])
    assert logged["eval/chance/vidore_ndcg_at_5"] == pytest.approx(metrics["chance"]["vidore_ndcg_at_5"])
    assert "eval/1x1/mmeb/SceneT2I/p_at_1" in logged and "eval/1x1/vidore/synth_reports_v2/ndcg_at_5" in logged
    assert not any(key.endswith("/queries") for key in logged)
    artifacts = {a.path for a in client.list_artifacts(mlflow_run["run_id"], "eval")}
    assert {"eval/report.json", "eval/plots"} <= artifacts
    # The prepared data it read is the run's dataset input, versioned by the folder's content hash.
    [read] = client.get_run(mlflow_run["run_id"]).inputs.dataset_inputs
    assert (read.dataset.name, read.dataset.digest) == (params.prepared_dir.name, folder_hash(params.prepared_dir)[:36])
    assert {tag.key: tag.value for tag in read.tags} == {"mlflow.data.context": "evaluation"}


def test_a_rerun_reuses_the_embeddings_of_the_same_model(eval_params, tmp_path, monkeypatch):
    import metaembed.evaluation.encode as encode

    params = load_root(eval_params())
    first = run_evaluate(params, progress=False)

    def refuse(*args, **kwargs):
        raise AssertionError("re-encoded although the cache matches")

    monkeypatch.setattr(encode, "encode_side", refuse)
    second = run_evaluate(params, progress=False)
    assert second["budgets"] == first["budgets"] and second["mlflow_run_id"] is None


def test_missing_inputs_fail_before_any_encoding_with_what_to_do(eval_params, tmp_path):
    params = load_root(eval_params({"train.report_dir": str(tmp_path / "nope"), "evaluate.log_to_mlflow": True}))
    with pytest.raises(FileNotFoundError, match="nope/metrics.json not found: train first"):
        run_evaluate(params, progress=False)
    params = load_root(eval_params({"train.output_dir": str(tmp_path / "none")}))
    with pytest.raises(FileNotFoundError, match="no trained model"):
        run_evaluate(params, progress=False)


def test_a_run_missing_from_the_store_is_named(eval_params, tmp_path, mlflow_store):
    path = eval_params({"evaluate.budgets": [[1, 1]]}, mlflow=True)
    (tmp_path / "train" / "metrics.json").write_text('{"mlflow_run_id": "0123456789abcdef0123456789abcdef"}')
    params = load_root(path)
    with pytest.raises(ValueError, match="MLflow run 0123456789abcdef0123456789abcdef is not in the tracking store"):
        run_evaluate(params, progress=False, root=mlflow_store[1])
