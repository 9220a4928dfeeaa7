"""`metaembed pretrain` end to end on the small benchmark: a backbone folder MetaEmbed can load,
held-out caption figures, an MLflow run, and a resume after a lost checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from metaembed.backbones import load_backbone
from metaembed.cli import main
from metaembed.training.checkpoints import COMPLETE_FILE


@pytest.fixture
def pretrain_params(write_params, tmp_path) -> Path:
    path = write_params()
    params = yaml.safe_load(path.read_text())
    params["pretrain"] = {
        "max_steps": 6, "warmup_steps": 1, "batch_size": 8, "lr": 3e-3, "heldout_captions": 16,
        "val_every_n_steps": 4, "checkpoint_every_n_steps": 3, "num_threads": 1,
        "output_dir": str(tmp_path / "backbone"), "report_dir": str(tmp_path / "pretrain"),
        "checkpoint_dir": str(tmp_path / "checkpoints-pretrain"),
    }
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.slow
def test_pretrain_writes_a_loadable_backbone_and_tracks_the_run(pretrain_params, tmp_path, backbone_params, capsys):
    assert main(["pretrain", "--params", str(pretrain_params)]) == 0
    report = json.loads((tmp_path / "pretrain" / "metrics.json").read_text())
    metrics = report["metrics"]
    assert metrics["steps"] == 6
    assert metrics["val/caption_loss"] < 6.0  # ln(vocabulary) = 6.9 before any step
    assert 0.0 < metrics["val/token_accuracy"] <= 1.0
    assert (tmp_path / "pretrain" / "loss_curve.png").stat().st_size > 0

    pretrained = load_backbone(backbone_params, name_or_path=str(tmp_path / "backbone"))
    base = load_backbone(backbone_params)
    changed = [name for name, weight in pretrained.model.state_dict().items()
               if not torch.equal(weight, base.model.state_dict()[name])]
    assert changed, "pretraining changed no weight of the saved backbone"
    assert pretrained.processor.tokenizer.get_vocab() == base.processor.tokenizer.get_vocab()

    client = MlflowClient(tracking_uri=yaml.safe_load(pretrain_params.read_text())["tracking"]["tracking_uri"])
    run = client.get_run(report["mlflow_run_id"])
    assert run.data.params["pretrain.max_steps"] == "6"
    assert len(client.get_metric_history(run.info.run_id, "pretrain/loss")) >= 2


@pytest.mark.slow
def test_pretrain_resumes_from_the_last_complete_checkpoint(pretrain_params, tmp_path, capsys):
    assert main(["pretrain", "--params", str(pretrain_params)]) == 0
    checkpoints = tmp_path / "checkpoints-pretrain"
    assert sorted(p.name for p in checkpoints.glob("*.ckpt")) == ["step=000003.ckpt"]  # as if killed after step 3
    (checkpoints / COMPLETE_FILE).unlink()  # a killed run never marks its folder finished
    (checkpoints / "step=000005.ckpt").write_bytes(b"torn")  # and a checkpoint cut short while writing
    capsys.readouterr()
    assert main(["pretrain", "--params", str(pretrain_params)]) == 0
    out = capsys.readouterr().out
    assert "step=000005.ckpt is incomplete" in out and "resuming from checkpoint" in out and "step=000003" in out
    assert json.loads((tmp_path / "pretrain" / "metrics.json").read_text())["metrics"]["steps"] == 6


def test_provenance_hashes_the_pretrain_file_given(write_params, tmp_path):
    from metaembed.config import load_root
    from metaembed.pretraining.run import NOT_USED, SECTIONS
    from metaembed.tracking.provenance import stage_tags

    roots = []
    for name, lr in (("a/side.yaml", 1e-3), ("b/side.yaml", 2e-3)):
        (tmp_path / name).parent.mkdir()
        path = write_params(name=name)
        params = yaml.safe_load(path.read_text())
        params["pretrain"]["lr"] = lr
        path.write_text(yaml.safe_dump(params))
        roots.append(load_root(path))
    # As pretraining tags its run.
    tags = [stage_tags(root, root.used(*SECTIONS, exclude=NOT_USED), tmp_path) for root in roots]
    # Before: both hashed <root>/params.yaml, whatever file pretraining was given.
    assert tags[0]["params.hash"] != tags[1]["params.hash"]
    assert [t["params.path"] for t in tags] == [str(tmp_path / "a" / "side.yaml"), str(tmp_path / "b" / "side.yaml")]
