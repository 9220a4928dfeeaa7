from __future__ import annotations

import json

import pytest
import torch
from mlflow.tracking import MlflowClient

from metaembed.config import load_root
from metaembed.model import MetaEmbed
from metaembed.training.run import SECTIONS, train


def test_a_short_training_saves_the_model_and_tracks_the_run(write_params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = load_root(write_params())
    report = train(params, root=tmp_path)

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
    assert "mlflow.parentRunId" not in run.data.tags  # started outside the pipeline flow
    [read] = run.inputs.dataset_inputs  # the prepared data, versioned as data.hash
    assert (read.dataset.name, read.dataset.digest) == (params.prepared_dir.name, run.data.tags["data.hash"][:36])
    assert {tag.key: tag.value for tag in read.tags} == {"mlflow.data.context": "training"}
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert len(history) >= 2 and all(torch.isfinite(torch.tensor(m.value)) for m in history)
    assert client.get_metric_history(run.info.run_id, "train/lr")


def test_training_learns_on_a_repeated_batch(write_params, tmp_path, monkeypatch):
    """Sanity of the whole loop: with a constant learning rate the loss falls clearly."""
    monkeypatch.chdir(tmp_path)
    params = load_root(write_params({"train.max_steps": 12, "train.val_every_n_steps": 100,
                                     "train.min_lr_ratio": 1.0, "train.lr": 3e-3}))
    report = train(params, root=tmp_path)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    losses = [m.value for m in client.get_metric_history(report["mlflow_run_id"], "train/loss")]
    assert losses[-1] < losses[0]


def test_bad_train_params_name_the_key(write_params):
    from metaembed.config import ParamsError

    with pytest.raises(ParamsError, match="train.warmup_steps|warmup_steps .* must be smaller"):
        load_root(write_params({"train.warmup_steps": 10}))
    with pytest.raises(ParamsError, match="train.strategy"):
        load_root(write_params({"train.strategy": "horovod"}))


@pytest.mark.parametrize("overrides", [{"model.pooling": "last"}, {"model.pooling": "tokens"}, {"loss.mmr": False}],
                         ids=["single-vector", "token-level", "no-mmr"])
def test_baselines_train_by_params(write_params, tmp_path, monkeypatch, overrides):
    monkeypatch.chdir(tmp_path)
    report = train(load_root(write_params({"train.max_steps": 2, **overrides})), root=tmp_path)
    metrics = report["metrics"]
    assert metrics["steps"] == 2 and "val/p_at_1_full" in metrics
    groups = sorted(key for key in metrics if key.startswith("train/loss_"))
    if "loss.mmr" in overrides:
        assert groups == ["train/loss_4x8"], "without MMR only the full group trains"
    model = MetaEmbed.from_pretrained(tmp_path / "model")
    assert model.params.pooling == overrides.get("model.pooling", "meta")


def _side_file(write_params, tmp_path, name: str, overrides: dict):
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    return write_params(overrides, name=name)


def test_provenance_describes_the_file_given_the_data_read_and_the_code(write_params, tmp_path, prepared_dir):
    import subprocess

    from metaembed.tracking.provenance import CODE_ROOT, folder_hash, stage_tags

    def provenance(params, root):  # as training tags its run
        return stage_tags(params, params.used(*SECTIONS), root)

    a = load_root(_side_file(write_params, tmp_path, "a/side.yaml", {"loss.temperature": 0.09}))
    b = load_root(_side_file(write_params, tmp_path, "b/side.yaml", {"loss.temperature": 0.03}))
    copy = tmp_path / "a" / "copy.yaml"  # the same values, other comments, another file
    copy.write_text("# a copy\n" + (tmp_path / "a" / "side.yaml").read_text())
    a_again = load_root(copy)
    tags_a, tags_b = provenance(a, root=tmp_path), provenance(b, root=tmp_path)
    # Before: both hashed <root>/params.yaml (here: none, "missing"), whatever file the run was given.
    assert tags_a["params.hash"] != tags_b["params.hash"]
    assert provenance(a_again, root=tmp_path)["params.hash"] == tags_a["params.hash"]
    assert tags_a["params.path"] == str(tmp_path / "a" / "side.yaml")
    a.train = a.train.model_copy(update={"max_steps": 3})  # `metaembed train --max-steps 3`
    assert provenance(a, root=tmp_path)["params.hash"] != tags_a["params.hash"]

    assert tags_a["data.hash"] == folder_hash(prepared_dir) and tags_a["data.path"] == str(prepared_dir.resolve())
    head = subprocess.run(["git", "-C", str(CODE_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert tags_a["git.commit"] == (head.stdout.strip() if head.returncode == 0 else "unknown")


def test_a_run_started_from_a_side_file_is_tagged_with_that_file(write_params, tmp_path, monkeypatch):
    from metaembed.tracking.provenance import content_hash

    monkeypatch.chdir(tmp_path)
    (tmp_path / "side").mkdir()
    side = write_params({"train.max_steps": 2, "loss.temperature": 0.05}, name="side/run.yaml")
    params = load_root(side)
    report = train(params, root=tmp_path)
    tags = MlflowClient(f"sqlite:///{side.parent}/mlflow.db").get_run(report["mlflow_run_id"]).data.tags
    assert tags["params.path"] == str(side)
    assert tags["params.hash"] == content_hash(params.used(*SECTIONS))  # before: "missing" (no <root>/params.yaml)
