"""Killed trainings resume on exactly the batches, and to the weights, of an uninterrupted run; torn
checkpoints are skipped; a diverging loss stops with a clear error."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from safetensors.torch import load_file

from metaembed.config import ParamsRoot, load_root
from metaembed.pretraining.module import CaptionModule
from metaembed.pretraining.run import pretrain
from metaembed.training import checkpoints
from metaembed.training.run import train


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
    first = train(load_root(write_params({"train.max_steps": 2, "train.checkpoint_every_n_steps": 2})), tmp_path)
    assert list((tmp_path / "checkpoints").glob("step=000002.ckpt"))
    changed = load_root(write_params({"train.max_steps": 3, "train.lr": 1e-4, "train.checkpoint_every_n_steps": 3}))
    report = train(changed, tmp_path)
    assert "resuming from checkpoint" not in capsys.readouterr().out
    assert report["metrics"]["steps"] == 3 and report["mlflow_run_id"] != first["mlflow_run_id"]
    assert not list((tmp_path / "checkpoints").glob("step=000002.ckpt")), "old configuration's checkpoints cleared"


def test_a_finished_training_is_not_resumed_by_the_next_one(write_params, tmp_path, monkeypatch, capsys):
    # DVC reruns the stage when its code changed; resuming the finished run would hand back its weights.
    monkeypatch.chdir(tmp_path)
    params = load_root(write_params({"train.max_steps": 2, "train.checkpoint_every_n_steps": 2}))
    first = train(params, tmp_path)
    capsys.readouterr()
    second = train(params, tmp_path)
    out = capsys.readouterr().out
    assert "belong to a run that finished" in out and "resuming from checkpoint" not in out
    assert second["metrics"]["steps"] == 2 and second["mlflow_run_id"] != first["mlflow_run_id"]


def test_checkpoints_made_from_other_prepared_data_are_not_resumed(write_params, prepared_dir, tmp_path, monkeypatch,
                                                                   capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(prepared_dir.parent, tmp_path / "data")  # the prepared rows point into ../raw
    data = tmp_path / "data" / prepared_dir.name
    params = load_root(write_params({"train.max_steps": 2, "train.checkpoint_every_n_steps": 2,
                                     "prepare.out_dir": str(data)}))
    train(params, tmp_path)
    (tmp_path / "checkpoints" / checkpoints.COMPLETE_FILE).unlink()  # as if killed after its last checkpoint
    (data / "regenerated.txt").write_text("the same folder, other contents")
    capsys.readouterr()
    train(params, tmp_path)
    out = capsys.readouterr().out
    assert "another configuration or other inputs" in out and "resuming from checkpoint" not in out


def test_a_diverging_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(write_params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = load_root(write_params({
        "train.max_steps": 6, "train.checkpoint_every_n_steps": 1, "train.val_every_n_steps": 100,
        "train.lr": 1e30, "train.warmup_steps": 0, "train.grad_clip": 1e30,
    }))
    with pytest.raises((ValueError, RuntimeError), match="NaN or inf|loss is nan|loss is inf"):
        train(params, tmp_path)
    kept = sorted((tmp_path / "checkpoints").glob("step=*.ckpt"))
    assert kept, "a checkpoint from before the divergence is kept"
    state = torch.load(kept[-1], map_location="cpu", weights_only=True)
    assert all(torch.isfinite(t).all() for t in state["state_dict"].values() if t.is_floating_point())


class _Crash(RuntimeError):
    """Stands in for a kill: the process dies between two checkpoints."""


def _digest(batch: dict) -> str:
    ids = batch["query"]["input_ids"] if "query" in batch else batch["input_ids"]
    return hashlib.sha1(ids.numpy().tobytes()).hexdigest()[:12]


class _BatchLog(L.Callback):
    """(global step, digest of its batch) for every optimiser step; raises at `crash_at`."""

    def __init__(self, crash_at: int | None = None):
        self.crash_at, self.seen = crash_at, []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.crash_at:
            raise _Crash(f"killed at step {self.crash_at}")
        self.seen.append((trainer.global_step, _digest(batch)))


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(folder.rglob("*.safetensors"))
    assert files, f"no weights saved under {folder}"
    return {f"{path.relative_to(folder)}:{key}": value for path in files for key, value in load_file(path).items()}


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [key for key in a if not torch.equal(a[key], b[key])]
    assert not different, f"{len(different)} tensors differ from the uninterrupted run, e.g. {different[:3]}"


# 8 steps, a checkpoint every 3, killed at step 5: the resume starts mid-epoch at step 3.
_RESUME = {"train.max_steps": 8, "train.checkpoint_every_n_steps": 3, "train.val_every_n_steps": 100,
           "train.accelerator": "cpu"}
# LoRA's dropout draws from the global random stream: a resume must continue it, and the loaders
# it recreates must not draw from it.
_DROPOUT = {"model.lora": {"enabled": True, "r": 4, "alpha": 4, "dropout": 0.5,
                           "target_modules": ["q_proj", "v_proj"]}}


@pytest.mark.parametrize("overrides", [{}, _DROPOUT], ids=["full", "lora-dropout"])
def test_a_resumed_training_sees_the_batches_and_ends_with_the_weights_of_an_uninterrupted_one(
        write_params, tmp_path, monkeypatch, overrides):
    for name in ("clean", "killed"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path)
    clean = _BatchLog()
    train(load_root(write_params(_RESUME | overrides, name="clean/params.yaml")), tmp_path,
          callbacks=[clean])
    assert [step for step, _ in clean.seen] == list(range(8))

    killed = load_root(write_params(_RESUME | overrides, name="killed/params.yaml"))
    with pytest.raises(_Crash):
        train(killed, tmp_path, callbacks=[_BatchLog(crash_at=5)])
    assert not (tmp_path / "killed" / "model").exists()
    resumed = _BatchLog()
    report = train(killed, tmp_path, callbacks=[resumed])

    assert report["metrics"]["steps"] == 8
    assert resumed.seen == clean.seen[3:], "the resumed run trains on steps 3..7 of the uninterrupted one, once each"
    _assert_same_weights(_weights(tmp_path / "killed" / "model"), _weights(tmp_path / "clean" / "model"))


@pytest.fixture
def pretrain_at(write_params):
    def write(name: str) -> ParamsRoot:
        path = write_params(name=f"{name}/params.yaml")
        params = yaml.safe_load(path.read_text())
        base = path.parent
        params["pretrain"] = {
            "max_steps": 8, "warmup_steps": 1, "batch_size": 4, "heldout_captions": 4, "num_threads": 1,
            "accelerator": "cpu", "val_every_n_steps": 100, "checkpoint_every_n_steps": 3,
            "output_dir": str(base / "backbone"), "report_dir": str(base / "report-pretrain"),
            "checkpoint_dir": str(base / "checkpoints-pretrain"),
        }
        path.write_text(yaml.safe_dump(params))
        return load_root(path)

    return write


def test_a_resumed_pretraining_sees_the_batches_and_ends_with_the_weights_of_an_uninterrupted_one(
        pretrain_at, tmp_path, monkeypatch):
    for name in ("clean", "killed"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path)
    log = _BatchLog()
    original = CaptionModule.training_step

    def logged_step(module, batch, batch_idx):
        log.on_train_batch_start(module.trainer, module, batch, batch_idx)
        return original(module, batch, batch_idx)

    monkeypatch.setattr(CaptionModule, "training_step", logged_step)
    pretrain(pretrain_at("clean"), tmp_path)
    clean = log.seen
    assert [step for step, _ in clean] == list(range(8))

    killed = pretrain_at("killed")
    log.crash_at, log.seen = 5, []
    with pytest.raises(_Crash):
        pretrain(killed, tmp_path)
    log.crash_at, log.seen = None, []
    pretrain(killed, tmp_path)

    assert log.seen == clean[3:], "the resumed run trains on steps 3..7 of the uninterrupted one, once each"
    _assert_same_weights(_weights(tmp_path / "killed" / "backbone"), _weights(tmp_path / "clean" / "backbone"))
