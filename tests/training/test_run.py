from __future__ import annotations

import json

import pytest
import torch
from mlflow.tracking import MlflowClient

from metaembed.model import MetaEmbed
from metaembed.training.run import TrainConfig, train


def test_a_short_training_saves_the_model_and_tracks_the_run(write_params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = TrainConfig.from_file(write_params())
    report = train(config, root=tmp_path)

    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics == report and metrics["metrics"]["steps"] == 4
    for key in ["train/loss", "train/loss_1x1", "train/loss_4x8", "val/p_at_1_1x1", "val/p_at_1_full", "train/offset_penalty"]:
        assert key in metrics["metrics"], key
    assert 0.0 <= metrics["metrics"]["val/p_at_1_full"] <= 1.0
    assert (tmp_path / "report" / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    model = MetaEmbed.from_pretrained(tmp_path / "model")
    assert model.num_vectors("query") == 4 and model.num_vectors("candidate") == 8

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run = client.get_run(report["mlflow_run_id"])
    assert run.data.params["train.max_steps"] == "4"
    assert run.data.params["loss.groups"].startswith("[[1, 1, 1.0]")
    assert {"git.commit", "params.hash", "data.hash"} <= set(run.data.tags)
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert len(history) >= 2 and all(torch.isfinite(torch.tensor(m.value)) for m in history)
    assert client.get_metric_history(run.info.run_id, "train/lr")


def test_training_learns_on_a_repeated_batch(write_params, tmp_path, monkeypatch):
    """Sanity of the whole loop: with a constant learning rate the loss falls clearly."""
    monkeypatch.chdir(tmp_path)
    config = TrainConfig.from_file(write_params({"train.max_steps": 12, "train.val_every_n_steps": 100,
                                                 "train.min_lr_ratio": 1.0, "train.lr": 3e-3}))
    report = train(config, root=tmp_path)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    losses = [m.value for m in client.get_metric_history(report["mlflow_run_id"], "train/loss")]
    assert losses[-1] < losses[0]


def test_bad_train_params_name_the_key(write_params):
    from metaembed.config import ParamsError

    with pytest.raises(ParamsError, match="train.warmup_steps|warmup_steps .* must be smaller"):
        TrainConfig.from_file(write_params({"train.warmup_steps": 10}))
    with pytest.raises(ParamsError, match="train.strategy"):
        TrainConfig.from_file(write_params({"train.strategy": "horovod"}))


@pytest.mark.parametrize("overrides", [{"model.pooling": "last"}, {"model.pooling": "tokens"}, {"loss.mmr": False}],
                         ids=["single-vector", "token-level", "no-mmr"])
def test_baselines_train_by_params(write_params, tmp_path, monkeypatch, overrides):
    monkeypatch.chdir(tmp_path)
    report = train(TrainConfig.from_file(write_params({"train.max_steps": 2, **overrides})), root=tmp_path)
    metrics = report["metrics"]
    assert metrics["steps"] == 2 and "val/p_at_1_full" in metrics
    groups = sorted(key for key in metrics if key.startswith("train/loss_"))
    if "loss.mmr" in overrides:
        assert groups == ["train/loss_4x8"], "without MMR only the full group trains"
    model = MetaEmbed.from_pretrained(tmp_path / "model")
    assert model.params.pooling == overrides.get("model.pooling", "meta")
