"""The prepared folder a run read, as its MLflow dataset input: named, versioned by data.hash, with its context."""

from __future__ import annotations

import json

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from metaembed.tracking import TrackingParams, configure, lightning_logger
from metaembed.tracking.datasets import EVALUATION, TRAINING, log_prepared_input, prepared_input
from metaembed.tracking.provenance import folder_hash, run_tags


@pytest.fixture(scope="module")
def tracking(tmp_path_factory) -> TrackingParams:
    root = tmp_path_factory.mktemp("store")
    return TrackingParams(tracking_uri=f"sqlite:///{root}/mlflow.db", artifact_location=str(root / "mlartifacts"),
                          experiment="datasets", system_metrics=False)


@pytest.fixture
def data_tags(tmp_path, monkeypatch):
    """The data tags of a run that read a small prepared folder, with data.dvc pinning the raw data."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "data.dvc").write_text("outs:\n- md5: 0123abcd.dir\n  path: data/raw\n")
    prepared = tmp_path / "data" / "prepared"
    (prepared / "train").mkdir(parents=True)
    (prepared / "train" / "a.parquet").write_bytes(b"rows")
    yield run_tags(tmp_path, prepared=prepared)
    mlflow.set_tracking_uri(None)


def inputs_of(tracking: TrackingParams, run_id: str) -> list:
    return MlflowClient(tracking.tracking_uri).get_run(run_id).inputs.dataset_inputs


def test_the_input_names_the_folder_and_its_version(data_tags, tmp_path):
    found = prepared_input(data_tags, TRAINING)
    dataset = found.dataset
    assert dataset.name == "prepared" and dataset.source_type == "local"
    assert json.loads(dataset.source) == {"uri": str((tmp_path / "data" / "prepared").resolve())}
    assert dataset.digest == folder_hash(tmp_path / "data" / "prepared")[:36]  # MLflow's digest limit
    assert json.loads(dataset.profile) == {"data.hash": data_tags["data.hash"], "data.dvc_md5": "0123abcd.dir"}
    assert [(tag.key, tag.value) for tag in found.tags] == [("mlflow.data.context", "training")]


def test_no_input_without_a_folder_read():
    assert prepared_input({"data.hash": "0123abcd.dir"}, TRAINING) is None  # run_tags without `prepared`
    assert prepared_input({"data.hash": "missing", "data.path": "/nowhere"}, TRAINING) is None


def test_logged_once_per_run_with_the_first_context(tracking, data_tags, tmp_path):
    client = MlflowClient(tracking.tracking_uri)
    run_id = client.create_run(configure(tracking, tmp_path)).info.run_id
    assert log_prepared_input(client, run_id, data_tags, TRAINING)
    assert log_prepared_input(client, run_id, data_tags, EVALUATION)  # an evaluation onto the training's run
    [logged] = inputs_of(tracking, run_id)
    assert logged.dataset.digest == data_tags["data.hash"][:36]
    assert {tag.key: tag.value for tag in logged.tags} == {"mlflow.data.context": "training"}
    assert not log_prepared_input(client, run_id, {}, TRAINING)


def test_the_training_logger_logs_the_input_when_it_creates_the_run(tracking, data_tags, tmp_path):
    logger = lightning_logger(tracking, run_name="train", tags=data_tags, root=tmp_path, data_context=TRAINING)
    [logged] = inputs_of(tracking, logger.run_id)
    assert logged.dataset.name == "prepared" and logged.tags[0].value == "training"
    resumed = lightning_logger(tracking, run_name="train", tags=data_tags, root=tmp_path, data_context=TRAINING,
                               run_id=logger.run_id)
    assert resumed.run_id == logger.run_id and len(inputs_of(tracking, logger.run_id)) == 1
    plain = lightning_logger(tracking, run_name="train", tags=data_tags, root=tmp_path)
    assert inputs_of(tracking, plain.run_id) == []


class _RacingClient:
    """A client whose first log_inputs loses the insert race on a team server (as seen with 4 trainings
    at once against MLflow on PostgreSQL: psycopg2's UniqueViolation on "dataset_pk")."""

    def __init__(self, message: str):
        self.message, self.calls = message, 0

    def log_inputs(self, run_id, datasets):
        from mlflow.exceptions import MlflowException

        self.calls += 1
        if self.calls == 1:
            raise MlflowException(self.message)


def test_a_dataset_logged_by_two_runs_at_once_is_linked_on_a_second_try(data_tags):
    client = _RacingClient('BAD_REQUEST: (psycopg2.errors.UniqueViolation) duplicate key value violates unique '
                           'constraint "dataset_pk"')
    assert log_prepared_input(client, "run", data_tags, TRAINING) is True
    assert client.calls == 2


def test_other_dataset_errors_are_not_retried(data_tags):
    from mlflow.exceptions import MlflowException

    client = _RacingClient("RESOURCE_DOES_NOT_EXIST: run 'run' not found")
    with pytest.raises(MlflowException, match="not found"):
        log_prepared_input(client, "run", data_tags, TRAINING)
    assert client.calls == 1
