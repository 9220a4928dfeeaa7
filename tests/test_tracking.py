"""metaembed.tracking against the embedded sqlite store and against a real `mlflow server`."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import time
import urllib.request
from pathlib import Path

import lightning as L
import mlflow
import pytest
import torch
from lightning_utilities.core.rank_zero import rank_zero_only
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH
from pydantic import BaseModel

from metaembed.config import ParamsError, section
from metaembed.tracking import (
    TrackingError,
    TrackingParams,
    configure,
    find_run,
    flatten_params,
    lightning_logger,
    log_dict_artifact,
    plot_loss_curve,
    resolve_tracking_uri,
    run_tags,
)
from metaembed.tracking.provenance import TRUNCATED

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NESTED = {"train": {"lr": 1e-4, "max_steps": 3}, "loss": {"groups": [[1, 1, 1.0], [2, 4, 1.0]]}}


@pytest.fixture(autouse=True)
def _isolated_tracking(monkeypatch, tmp_path):
    # A developer's own MLFLOW_TRACKING_URI must not send test runs to their server, and a
    # client built before configure() (mlflow's default is ./mlflow.db) must not touch the repo.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", raising=False)
    yield
    # configure() sets mlflow's process-wide URI; later tests must not inherit our tmp store.
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> TrackingParams:
    """One embedded store for the module: creating an sqlite schema costs about 2 s."""
    folder = tmp_path_factory.mktemp("mlflow")
    return TrackingParams(
        tracking_uri=f"sqlite:///{folder}/mlflow.db",
        artifact_location=str(folder / "mlartifacts"),
        experiment="metaembed-test",
        system_metrics=False,
    )


class FourParameters(L.LightningModule):
    """y = w.x + b on 3 features: 4 parameters, one `train/loss` point per step."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)

    def training_step(self, batch, batch_idx):
        features, target = batch
        loss = torch.nn.functional.mse_loss(self.layer(features).squeeze(-1), target)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        generator = torch.Generator().manual_seed(0)
        features = torch.randn(16, 3, generator=generator)
        dataset = torch.utils.data.TensorDataset(features, features.sum(dim=1))
        return torch.utils.data.DataLoader(dataset, batch_size=4)


def train_three_steps(logger, root: Path) -> None:
    logger.log_hyperparams(NESTED)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=3,
        logger=logger,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(FourParameters())


def runs_in(experiment_id: str) -> list:
    return MlflowClient().search_runs([experiment_id])


# --- store and experiment ---------------------------------------------------------------------


def test_configure_is_idempotent_and_uses_the_artifact_location(store):
    first, second = configure(store), configure(store)
    assert first == second
    experiment = MlflowClient().get_experiment(first)
    assert experiment.artifact_location == Path(store.artifact_location).as_uri()
    assert len(MlflowClient().search_experiments(filter_string=f"name = '{store.experiment}'")) == 1


def test_configure_survives_losing_the_create_race(store, monkeypatch):
    existing = configure(store)
    real_lookup = MlflowClient.get_experiment_by_name
    calls = []

    def another_process_created_it_just_now(self, name):
        calls.append(name)
        return None if len(calls) == 1 else real_lookup(self, name)

    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", another_process_created_it_just_now)
    assert configure(store) == existing
    assert len(calls) == 2  # looked up again after create_experiment said it already exists


def test_configure_refuses_a_deleted_experiment(store):
    params = store.model_copy(update={"experiment": "metaembed-deleted"})
    experiment_id = configure(params)
    MlflowClient().delete_experiment(experiment_id)
    with pytest.raises(TrackingError, match=f"metaembed-deleted.*restore --experiment-id {experiment_id}`"):
        configure(params)


def test_tracking_uri_resolution(tmp_path, monkeypatch):
    assert resolve_tracking_uri(TrackingParams(), root=tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    other = TrackingParams(tracking_uri=f"sqlite:///{tmp_path}/other.db")
    # What configure(other) does first; mlflow also writes the URI into MLFLOW_TRACKING_URI...
    mlflow.set_tracking_uri(resolve_tracking_uri(other))
    assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path}/other.db"
    # ...which must not be mistaken for a user's override of the next params.
    assert resolve_tracking_uri(TrackingParams(), root=tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert resolve_tracking_uri(TrackingParams(), root=tmp_path) == "http://127.0.0.1:5999"


def test_tracking_params_reject_unknown_keys():
    with pytest.raises(ParamsError, match="tracking.tracking_url"):
        section({"tracking": {"tracking_url": "x"}}, "tracking", TrackingParams)


# --- a Lightning training run -----------------------------------------------------------------


def test_lightning_run_records_params_history_tags_and_loss_curve(store, tmp_path):
    experiment_id = configure(store)
    before = len(runs_in(experiment_id))
    tags = {"git.commit": "abc123", "params.hash": "p1", "data.hash": "d1"}
    logger = lightning_logger(store, run_name="toy", tags=tags)
    train_three_steps(logger, tmp_path)

    assert len(runs_in(experiment_id)) == before + 1
    run = MlflowClient().get_run(logger.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "toy"
    assert {key: run.data.tags[key] for key in tags} == tags
    assert run.data.params["train.lr"] == "0.0001"
    assert run.data.params["loss.groups"] == "[[1, 1, 1.0], [2, 4, 1.0]]"
    history = MlflowClient().get_metric_history(logger.run_id, "train/loss")
    assert sorted(point.step for point in history) == [0, 1, 2]

    png = plot_loss_curve(logger.run_id, path=tmp_path / "figures" / "loss_curve.png")
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    logged = Path(MlflowClient().download_artifacts(logger.run_id, "plots/loss_curve.png", str(tmp_path)))
    assert logged.read_bytes() == png.read_bytes()

    log_dict_artifact(logger.run_id, {"p_at_1": {"1x1": 0.5}}, "eval/metrics.json")
    logged_dict = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/eval/metrics.json")
    assert logged_dict == {"p_at_1": {"1x1": 0.5}}

    assert find_run(tags, store).info.run_id == logger.run_id
    assert find_run({**tags, "data.hash": "d2"}, store) is None


def test_plot_loss_curve_names_missing_metrics(store, tmp_path):
    experiment_id = configure(store)
    run = MlflowClient().create_run(experiment_id)
    with pytest.raises(ValueError, match="no history for \\['val/loss'\\]"):
        plot_loss_curve(run.info.run_id, ("val/loss",), path=tmp_path / "loss.png")
    assert not (tmp_path / "loss.png").exists()


@pytest.mark.parametrize("enabled", [True, False])
def test_system_metrics_follow_the_switch(store, monkeypatch, enabled):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    logger = lightning_logger(store.model_copy(update={"system_metrics": enabled}), run_name="sys")
    run_id = logger.run_id  # creates the run (and starts the monitor) like the Trainer would
    time.sleep(1.0)
    logger.finalize("success")
    metrics = MlflowClient().get_run(run_id).data.metrics
    assert ("system/cpu_utilization_percentage" in metrics) is enabled


def test_logger_pickles_for_ddp_spawn_without_its_sampler(store):
    logger = lightning_logger(store.model_copy(update={"system_metrics": True}), run_name="spawn")
    run_id = logger.run_id  # ddp_spawn users create the run in the parent, before fit
    copy = pickle.loads(pickle.dumps(logger))  # what a spawned worker receives
    assert copy.run_id == run_id
    assert copy._monitor is None and logger._monitor is not None
    logger.finalize("success")
    assert MlflowClient().get_run(run_id).info.status == "FINISHED"


def test_non_zero_rank_creates_no_run_and_logs_nothing(store, monkeypatch, tmp_path):
    experiment_id = configure(store)
    before = len(runs_in(experiment_id))
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger = lightning_logger(store, run_name="rank1")
    assert logger.run_id is None
    logger.log_hyperparams(NESTED)
    log_dict_artifact(logger.run_id, {"a": 1}, "a.json")  # would raise on rank 0 (no run id)
    assert plot_loss_curve(logger.run_id, path=tmp_path / "loss.png") is None
    assert len(runs_in(experiment_id)) == before
    assert not (tmp_path / "loss.png").exists()


# --- params and provenance --------------------------------------------------------------------


def test_flatten_params_nested_long_and_odd_values():
    class Lora(BaseModel):
        r: int = 32
        target_modules: list[str] = ["q_proj", "v_proj"]

    flat = flatten_params(
        {
            **NESTED,
            "model": {"lora": Lora(), "projection_dim": None, "enabled": False, "extra": {}},
            "name": "tiny",
            "long": "x" * (MAX_PARAM_VAL_LENGTH + 10),
        }
    )
    assert flat["train.lr"] == "0.0001"
    assert flat["loss.groups"] == "[[1, 1, 1.0], [2, 4, 1.0]]"
    assert flat["model.lora.target_modules"] == '["q_proj", "v_proj"]'
    assert flat["model.projection_dim"] == "null"
    assert flat["model.enabled"] == "false"
    assert flat["model.extra"] == "{}"
    assert flat["name"] == "tiny"
    assert len(flat["long"]) == MAX_PARAM_VAL_LENGTH and flat["long"].endswith(TRUNCATED)
    assert flatten_params({"lr": 0.1}, prefix="train") == {"train.lr": "0.1"}
    assert flatten_params({"v": "ab" + "c" * 20}, max_length=len(TRUNCATED) + 2) == {"v": "ab" + TRUNCATED}


def git(repo: Path, *args: str) -> str:
    command = ["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=t", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def test_run_tags_in_a_git_repo(tmp_path):
    (tmp_path / "params.yaml").write_text("train:\n  lr: 0.1  # comment\nloss:\n  temperature: 0.03\n")
    (tmp_path / "data.dvc").write_text("outs:\n- md5: 0123abcd.dir\n  size: 10\n  path: data/raw\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "params.yaml", "data.dvc")
    git(tmp_path, "commit", "-q", "-m", "init")

    tags = run_tags(tmp_path)
    assert tags["git.commit"] == git(tmp_path, "rev-parse", "HEAD")
    assert tags["git.dirty"] == "false"
    assert tags["data.hash"] == "0123abcd.dir"
    train_only = run_tags(tmp_path, sections=["train"])["params.hash"]

    # Layout and comments are not content; a value in another section is not `train`'s.
    (tmp_path / "params.yaml").write_text("loss: {temperature: 0.03}\ntrain: {lr: 0.1}\n")
    assert run_tags(tmp_path)["params.hash"] == tags["params.hash"]
    (tmp_path / "params.yaml").write_text("loss: {temperature: 0.05}\ntrain: {lr: 0.1}\n")
    changed = run_tags(tmp_path)
    assert changed["params.hash"] != tags["params.hash"]
    assert run_tags(tmp_path, sections=["train"])["params.hash"] == train_only
    assert changed["git.dirty"] == "true"


def test_run_tags_outside_a_repo(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "params.yaml").write_text("train: {lr: 0.1}\n")
    # Stop git from finding a repository in a parent of the temp folder.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    tags = run_tags(project)
    assert tags["git.commit"] == "unknown" and tags["git.dirty"] == "unknown"
    assert tags["data.hash"] == "missing"
    assert len(tags["params.hash"]) == 64


def test_run_tags_names_a_dvc_file_without_md5(tmp_path):
    (tmp_path / "data.dvc").write_text("outs: []\n")
    with pytest.raises(ValueError, match="data.dvc: no outs\\[0\\].md5"):
        run_tags(tmp_path)


# --- the same logging through a tracking server -----------------------------------------------


def search_runs_over_rest(url: str, experiment_id: str, run_name: str) -> list[dict]:
    body = json.dumps({"experiment_ids": [experiment_id], "filter": f"attributes.run_name = '{run_name}'"})
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/runs/search",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response).get("runs", [])


@pytest.mark.slow
def test_logging_through_a_tracking_server(services, tmp_path, monkeypatch):
    """The team server of `metaembed services` (PostgreSQL, artifacts served into its own folder)."""
    url = services.tracking_uri
    # Other tests in this process may have derived this URI from a params file: forget that, so the
    # variable reads as the user's override again.
    monkeypatch.setattr("metaembed.tracking.store._derived_from_params", set())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    # root=tmp_path: should the override ever be ignored, the sqlite default lands in tmp.
    params = TrackingParams(experiment="metaembed-server", system_metrics=False)
    logger = lightning_logger(params, run_name="via-server", tags={"data.hash": "d1"}, root=tmp_path)
    train_three_steps(logger, tmp_path)
    plot_loss_curve(logger.run_id, path=tmp_path / "loss_curve.png")

    [run] = search_runs_over_rest(url, configure(params, root=tmp_path), "via-server")
    assert run["info"]["run_id"] == logger.run_id
    assert run["info"]["status"] == "FINISHED"
    assert {"key": "train.lr", "value": "0.0001"} in run["data"]["params"]
    assert {"key": "data.hash", "value": "d1"} in run["data"]["tags"]
    assert len(MlflowClient(url).get_metric_history(logger.run_id, "train/loss")) == 3
    # Artifacts were uploaded through the server into its destination, not written locally.
    stored = services.root / "mlartifacts" / run["info"]["experiment_id"] / logger.run_id
    assert [p.name for p in stored.rglob("loss_curve.png")] == ["loss_curve.png"]
    assert not (tmp_path / "mlflow.db").exists()
