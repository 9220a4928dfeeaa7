"""Two CPU processes (DDP, gloo) train exactly like one process on the same global batch."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.slow
def test_two_processes_match_one_on_the_same_global_batch(write_params, train_cli, same_model, tmp_path):
    common = {"train.max_steps": 3, "train.batch_size": 8, "train.sub_batch_size": 4,
              "train.val_every_n_steps": 100, "train.accelerator": "cpu", "train.lr": 1e-3,
              "model.centering": False}  # centering uses per-rank batch statistics
    single_dir, ddp_dir = tmp_path / "single", tmp_path / "ddp"
    single_dir.mkdir(), ddp_dir.mkdir()
    single = train_cli(write_params(common, name="single/params.yaml"), single_dir)
    ddp = train_cli(write_params(common | {"train.devices": 2, "train.strategy": "ddp"}, name="ddp/params.yaml"), ddp_dir)

    assert single["metrics"]["steps"] == ddp["metrics"]["steps"] == 3
    assert ddp["metrics"]["train/loss"] == pytest.approx(single["metrics"]["train/loss"], rel=1e-4)
    same_model(single_dir, ddp_dir)


@pytest.mark.slow
def test_centering_means_are_measured_over_both_ranks(write_params, train_cli, tmp_path):
    from metaembed.model import MetaEmbed

    params = {"train.max_steps": 2, "train.batch_size": 8, "train.sub_batch_size": 4, "train.calibration_batches": 2,
              "train.val_every_n_steps": 100, "train.accelerator": "cpu", "model.centering": True,
              "train.devices": 2, "train.strategy": "ddp"}
    (tmp_path / "ddp").mkdir()
    train_cli(write_params(params, name="ddp/params.yaml"), tmp_path / "ddp")
    model = MetaEmbed.from_pretrained(tmp_path / "ddp" / "model")
    # 2 calibration batches of 8 rows, 4 per rank: the saved means count the rows of both ranks.
    assert model.center_updates.tolist() == [16, 16]
    with torch.inference_mode():
        vectors, _ = model.encode_queries(["a red circle"])
    assert torch.isfinite(vectors).all()
