"""Two CPU processes (DDP, gloo), spawned by Lightning or started by hand as two nodes, train exactly
like one process on the same global batch."""

from __future__ import annotations

import json
import socket

import pytest
import torch


# Centering is off: it uses per-rank batch statistics.
COMMON = {"train.max_steps": 3, "train.batch_size": 8, "train.sub_batch_size": 4, "train.val_every_n_steps": 100,
          "train.accelerator": "cpu", "train.lr": 1e-3, "model.centering": False}


@pytest.mark.slow
def test_two_processes_match_one_on_the_same_global_batch(write_params, train_cli, same_model, tmp_path):
    single_dir, ddp_dir = tmp_path / "single", tmp_path / "ddp"
    single_dir.mkdir(), ddp_dir.mkdir()
    single = train_cli(write_params(COMMON, name="single/params.yaml"), single_dir)
    ddp = train_cli(write_params(COMMON | {"train.devices": 2, "train.strategy": "ddp"}, name="ddp/params.yaml"), ddp_dir)

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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_on_loopback_match_one_process(write_params, train_cli, start_training, same_model, tmp_path):
    """Two nodes of one process each, started by hand on loopback as a cluster's launcher would
    (NODE_RANK, MASTER_ADDR/PORT, WORLD_SIZE), train like one process on the same global batch."""
    single_dir, nodes_dir = tmp_path / "single", tmp_path / "nodes"
    single_dir.mkdir(), nodes_dir.mkdir()
    single = train_cli(write_params(COMMON, name="single/params.yaml"), single_dir)

    params = write_params(COMMON | {"train.num_nodes": 2, "train.devices": 1, "train.strategy": "ddp"},
                          name="nodes/params.yaml")
    port = str(_free_port())
    nodes = [start_training(params, nodes_dir, MASTER_PORT=port, NODE_RANK=str(rank), WORLD_SIZE="2")
             for rank in (0, 1)]
    try:
        logs = [node.communicate(timeout=300)[0] for node in nodes]
    finally:
        for node in nodes:  # one node failing leaves the other waiting for it
            node.kill()
    for rank, (node, log) in enumerate(zip(nodes, logs)):
        assert node.returncode == 0, f"node {rank}:\n{log[-3000:]}"
        assert f"Initializing distributed: GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in log

    report = json.loads((nodes_dir / "report" / "metrics.json").read_text())  # rank 0 writes it
    assert report["metrics"]["steps"] == single["metrics"]["steps"] == 3
    assert report["metrics"]["train/loss"] == pytest.approx(single["metrics"]["train/loss"], rel=1e-4)
    same_model(single_dir, nodes_dir)
