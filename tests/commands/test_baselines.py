"""`metaembed baselines` end to end on a tiny configuration: every variant trains a few steps and is
evaluated; the table lands in the results document and in MLflow; a re-run reuses finished runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from metaembed.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_baselines_train_evaluate_aggregate_and_report(baselines_params, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["baselines", "--params", str(baselines_params), "--seeds", "0", "--set", "train.max_steps=2", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out

    doc = (tmp_path / "results.md").read_text()
    for variant in ("metaembed (MetaEmbed, MMR)", "metaembed_no_mmr (MetaEmbed without MMR)",
                    "single_vector (single vector)", "token_level (token-level multi-vector)"):
        assert re.search(rf"^\| {re.escape(variant)} +\|", doc, re.MULTILINE), variant
    assert "`train.max_steps=2`" in doc and "max_steps [2]" in doc and re.search(r"^\| chance +\|", doc, re.MULTILINE)
    assert "**MMR beats no-MMR at (1,1)** (MMEB P@1): " in doc and "not measured" not in doc
    assert "MMEB P@1" in out

    results = json.loads((tmp_path / "baselines" / "results.json").read_text())
    assert {(r["variant"], r["budget"]) for r in results["rows"]} == {
        ("metaembed", "1x1"), ("metaembed", "2x4"), ("metaembed_no_mmr", "1x1"), ("metaembed_no_mmr", "2x4"),
        ("single_vector", "1x1"), ("token_level", "tokens")}
    assert (tmp_path / "baselines" / "baselines.png").read_bytes()[:4] == b"\x89PNG"
    run_params = yaml.safe_load((tmp_path / "baselines" / "token_level" / "seed0" / "params.yaml").read_text())
    assert run_params["model"]["pooling"] == "tokens" and run_params["train"]["max_steps"] == 2

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    parent = client.get_run(results["mlflow_run_id"])
    assert parent.info.run_name == "baselines" and parent.info.status == "FINISHED"
    assert "baselines/metaembed/2x4/mmeb_p_at_1/mean" in parent.data.metrics
    children = [client.get_run(r["mlflow_run_id"]) for r in results["runs"]]
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert all(any(k.startswith("eval/") and k.endswith("/mmeb_p_at_1") for k in c.data.metrics) for c in children)
    assert {c.data.tags["baselines.variant"] for c in children} == {"metaembed", "metaembed_no_mmr", "single_vector",
                                                                   "token_level"}

    # A re-run trains nothing: every run is reused, and the aggregate is the same.
    import metaembed.training.run as training

    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("retrained a finished run"))
    assert main([*args, "--variants", "metaembed,token_level", "--no-mlflow"]) == 0
    again = json.loads((tmp_path / "baselines" / "results.json").read_text())
    assert [r for r in again["rows"] if r["variant"] == "metaembed"] == \
        [r for r in results["rows"] if r["variant"] == "metaembed"]
