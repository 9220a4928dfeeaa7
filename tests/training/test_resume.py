"""Killed trainings resume; torn checkpoints are skipped; a diverging loss stops with a clear error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from metaembed.training.run import TrainConfig, train


def _command(params: Path) -> list[str]:
    return [sys.executable, "-m", "metaembed.cli", "train", "--params", str(params)]


def _wait_for(path_glob: Path, pattern: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not list(path_glob.glob(pattern)):
        if process.poll() is not None:
            raise AssertionError(f"training ended (rc {process.returncode}) before {pattern} appeared")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{pattern} did not appear within {timeout} s")
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_then_restart_resumes_and_ends_at_the_same_step(write_params, tmp_path):
    params = write_params({"train.max_steps": 14, "train.checkpoint_every_n_steps": 2,
                           "train.val_every_n_steps": 100})
    checkpoints = tmp_path / "checkpoints"
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(_command(params), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                             env=os.environ | {"PYTHONUNBUFFERED": "1"})
    _wait_for(checkpoints, "step=000004.ckpt", first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    assert not (tmp_path / "report" / "metrics.json").exists(), "killed before it could finish"
    run_id = (checkpoints / "mlflow_run_id").read_text().strip()

    # A newer checkpoint that was torn mid-write must be skipped, with a message.
    newest = max(checkpoints.glob("step=*.ckpt"))
    torn = checkpoints / "step=000099.ckpt"
    torn.write_bytes(newest.read_bytes()[:1000])

    second = subprocess.run(_command(params), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    output = second.stdout + second.stderr
    assert "step=000099.ckpt is incomplete" in output and "falling back to the previous one" in output
    assert "resuming from checkpoint" in output
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert report["metrics"]["steps"] == 14
    assert report["mlflow_run_id"] == run_id, "the resumed training continues its MLflow run"


def test_a_changed_configuration_does_not_resume_foreign_checkpoints(write_params, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    first = train(TrainConfig.from_file(write_params({"train.max_steps": 2, "train.checkpoint_every_n_steps": 2})),
                  tmp_path)
    assert list((tmp_path / "checkpoints").glob("step=000002.ckpt"))
    changed = TrainConfig.from_file(write_params({"train.max_steps": 3, "train.lr": 1e-4,
                                                  "train.checkpoint_every_n_steps": 3}))
    report = train(changed, tmp_path)
    assert "resuming from checkpoint" not in capsys.readouterr().out
    assert report["metrics"]["steps"] == 3 and report["mlflow_run_id"] != first["mlflow_run_id"]
    assert not list((tmp_path / "checkpoints").glob("step=000002.ckpt")), "old configuration's checkpoints cleared"


def test_a_diverging_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(write_params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = TrainConfig.from_file(write_params({
        "train.max_steps": 6, "train.checkpoint_every_n_steps": 1, "train.val_every_n_steps": 100,
        "train.lr": 1e30, "train.warmup_steps": 0, "train.grad_clip": 1e30,
    }))
    with pytest.raises((ValueError, RuntimeError), match="NaN or inf|loss is nan|loss is inf"):
        train(config, tmp_path)
    kept = sorted((tmp_path / "checkpoints").glob("step=*.ckpt"))
    assert kept, "a checkpoint from before the divergence is kept"
    state = torch.load(kept[-1], map_location="cpu", weights_only=True)
    assert all(torch.isfinite(t).all() for t in state["state_dict"].values() if t.is_floating_point())
