"""pipeline_run and parent_tags: one parent per flow run, the stage runs nested under it by an env variable."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from metaembed.tracking import TrackingParams, configure, lightning_logger
from metaembed.tracking.pipeline_run import ERROR_TAG, FLOW_RUN_TAG, PARENT_RUN_ENV, parent_tags, pipeline_run


@pytest.fixture(scope="module")
def tracking(tmp_path_factory) -> TrackingParams:
    """One store for the module: creating an sqlite schema costs seconds."""
    root = tmp_path_factory.mktemp("store")
    return TrackingParams(tracking_uri=f"sqlite:///{root}/mlflow.db", artifact_location=str(root / "mlartifacts"),
                          experiment="pipeline-runs", system_metrics=False)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(PARENT_RUN_ENV, raising=False)
    yield
    mlflow.set_tracking_uri(None)


def client_of(tracking: TrackingParams) -> MlflowClient:
    return MlflowClient(tracking.tracking_uri)


def stage_run(tracking: TrackingParams, tmp_path) -> str:
    """A run as a stage starts it (lightning_logger), finished."""
    logger = lightning_logger(tracking, run_name="train", tags={"git.commit": "c0ffee"}, root=tmp_path)
    client_of(tracking).set_terminated(logger.run_id)
    return logger.run_id


def test_parent_tags_come_from_the_environment_only_when_the_flow_set_it():
    assert parent_tags({}) == {} and parent_tags({PARENT_RUN_ENV: "  "}) == {}
    assert parent_tags({PARENT_RUN_ENV: "abc123"}) == {"mlflow.parentRunId": "abc123"}


def test_a_stage_run_is_the_child_of_the_run_the_flow_handed_down(tracking, tmp_path, monkeypatch):
    with pipeline_run(tracking, tmp_path, "flow-1", "pipeline brave-otter", {"pipeline.stages": "train"}) as parent:
        monkeypatch.setenv(PARENT_RUN_ENV, parent.run_id)  # what the flow puts in a stage's environment
        child = stage_run(tracking, tmp_path)
        parent.tag({"pipeline.stage.train": "ran"})
    client = client_of(tracking)
    tags = client.get_run(child).data.tags
    assert tags["mlflow.parentRunId"] == parent.run_id and tags["git.commit"] == "c0ffee"
    made = client.get_run(parent.run_id)
    assert made.info.status == "FINISHED" and made.info.run_name == "pipeline brave-otter"
    assert {key: made.data.tags[key] for key in (FLOW_RUN_TAG, "pipeline.stages", "pipeline.stage.train")} == {
        FLOW_RUN_TAG: "flow-1", "pipeline.stages": "train", "pipeline.stage.train": "ran"}
    assert "mlflow.parentRunId" not in made.data.tags


def test_a_stage_run_outside_the_flow_has_no_parent(tracking, tmp_path):
    assert "mlflow.parentRunId" not in client_of(tracking).get_run(stage_run(tracking, tmp_path)).data.tags


def test_a_retried_flow_run_reuses_its_parent_and_a_failure_is_recorded(tracking, tmp_path):
    password = "s3cret"
    with pytest.raises(RuntimeError, match="stage 'train' failed"):
        with pipeline_run(tracking, tmp_path, "flow-2", "pipeline first") as first:
            raise RuntimeError(f"stage 'train' failed (exit 1) at http://bob:{password}@host\nits last output: ...")
    client = client_of(tracking)
    failed = client.get_run(first.run_id)
    assert failed.info.status == "FAILED"
    assert failed.data.tags[ERROR_TAG] == "stage 'train' failed (exit 1) at http://bob:***@host"

    with pipeline_run(tracking, tmp_path, "flow-2", "pipeline second", {"pipeline.stages": "other"}) as again:
        assert client.get_run(again.run_id).info.status == "RUNNING"
    assert again.run_id == first.run_id
    retried = client.get_run(again.run_id)
    assert retried.info.status == "FINISHED" and ERROR_TAG not in retried.data.tags
    assert retried.info.run_name == "pipeline first" and "pipeline.stages" not in retried.data.tags

    with pipeline_run(tracking, tmp_path, "flow-3", "pipeline third") as other:
        pass
    assert other.run_id != first.run_id


def test_long_values_are_cut_with_a_marker_and_the_summary_is_the_description(tracking, tmp_path):
    with pipeline_run(tracking, tmp_path, "flow-4", "pipeline") as parent:
        parent.tag({"pipeline.gate_reason": "x" * 9000, "pipeline.model_new": True})
        parent.describe("# metaembed pipeline\n\n| stage | status |")
    tags = client_of(tracking).get_run(parent.run_id).data.tags
    assert len(tags["pipeline.gate_reason"]) == 8000 and tags["pipeline.gate_reason"].endswith("...[truncated]")
    assert tags["pipeline.model_new"] == "True"
    assert tags["mlflow.note.content"].startswith("# metaembed pipeline")


def test_the_parent_goes_to_the_configured_experiment(tracking, tmp_path):
    experiment = configure(tracking, tmp_path)
    with pipeline_run(tracking, tmp_path, "flow-5", "pipeline") as parent:
        pass
    assert client_of(tracking).get_run(parent.run_id).info.experiment_id == experiment
