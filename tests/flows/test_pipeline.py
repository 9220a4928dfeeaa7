"""The pipeline flow on a real Prefect server: stage order, failures, retries, registry, artifact.

The DVC stages are replaced by a recorder (the stage outputs are already in place, as after a
real train and sweep); `test_stages_go_through_dvc...` runs real `dvc repro` on a toy project.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from metaembed.orchestration import stages
from metaembed.orchestration.registry_steps import ARTIFACT_KEY
from metaembed.orchestration.stages import StageFailed, dvc_stage
from metaembed.tracking.pipeline_run import PARENT_RUN_ENV

STAGES = ["prepare", "train", "evaluate", "sweep", "index"]  # flow_project's pipeline.stages


class Recorder:
    """Stands in for `run_command`: records what the flow ran and the environment it added; optional
    failures per stage."""

    def __init__(self, outputs=None, failures=None):
        self.calls, self.outputs, self.failures = [], outputs or {}, dict(failures or {})
        self.envs = {}

    def __call__(self, command, cwd, stage, extra_env={}):
        self.calls.append(stage)
        self.envs[stage] = dict(extra_env)
        pending = self.failures.get(stage)
        if pending:
            self.failures[stage] = pending[1:]
            raise StageFailed(stage, 1, pending[0])
        return self.outputs.get(stage, f"Running stage '{stage}'")


@pytest.fixture
def run(pipeline_flow, monkeypatch):
    """Run the pipeline flow on `project` with `recorder` in place of the stage commands."""

    def run_flow(project, recorder):
        monkeypatch.setattr(stages, "run_command", recorder)
        return pipeline_flow(params=str(project.params_path), root=str(project.root), return_state=True)

    return run_flow


def read_artifact(api_url, key):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    assert api_url.startswith("http://127.0.0.1:")
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


def test_the_flow_runs_the_stages_registers_and_promotes_then_reruns_to_nothing_new(flow_project, prefect_api, run):
    run_id = flow_project.train(0, quality=0.5, index_ms=2.0)  # the index stage's output is there too
    recorder = Recorder()
    state = run(flow_project, recorder)

    assert state.is_completed(), state.message
    summary = state.result()
    assert recorder.calls == ["data ensure", "prepare", "train", "evaluate", "sweep", "index"]
    assert summary["stages"] == {stage: "ran" for stage in STAGES}
    assert (summary["created"], summary["gate"], summary["champion"], summary["train_run_id"]) == (
        True, "promote", "1", run_id)
    assert flow_project.aliases() == {"challenger": "1", "champion": "1"}
    [artifact] = [a for a in read_artifact(prefect_api, ARTIFACT_KEY)
                  if a.flow_run_id == state.state_details.flow_run_id]
    assert "Promotion gate: promote" in artifact.data and run_id in artifact.data
    assert re.search(r"\|\s*4x8\s*\|\s*0\.5000\s*\|", artifact.data)  # the budget table: quality and costs
    assert "linked" in artifact.data and "measured by the index stage" in artifact.data

    skipped = Recorder(outputs={s: f"Stage '{s}' didn't change, skipping" for s in STAGES})
    again = run(flow_project, skipped).result()
    assert again["stages"] == {stage: "skipped (unchanged)" for stage in STAGES}
    assert (again["created"], again["gate"], again["champion"]) == (False, "already champion", "1")
    assert flow_project.versions() == ["1"]


class StageRuns(Recorder):
    """A recorder whose `train` starts its MLflow run as the real stage does, in the environment it was given."""

    def __init__(self, project, **kwargs):
        super().__init__(**kwargs)
        self.project, self.train_run_id = project, None

    def __call__(self, command, cwd, stage, extra_env={}):
        from unittest import mock

        from metaembed.config import load_section
        from metaembed.tracking import TrackingParams, lightning_logger

        output = super().__call__(command, cwd, stage, extra_env)
        if stage == "train":
            with mock.patch.dict("os.environ", extra_env):
                tracking = load_section("tracking", TrackingParams, self.project.params_path)
                self.train_run_id = lightning_logger(tracking, run_name="train", root=self.project.root).run_id
        return output


def test_the_flow_run_is_one_mlflow_parent_run_over_its_stage_runs(flow_project, prefect_api, run):
    flow_project.train(0, quality=0.5, index_ms=2.0)
    recorder = StageRuns(flow_project, outputs={"prepare": "Stage 'prepare' didn't change, skipping"})
    state = run(flow_project, recorder)

    assert state.is_completed(), state.message
    parent_id = recorder.envs["train"][PARENT_RUN_ENV]
    assert all(env == {PARENT_RUN_ENV: parent_id} for env in recorder.envs.values())  # data ensure too
    client = flow_project.client()
    assert client.get_run(recorder.train_run_id).data.tags["mlflow.parentRunId"] == parent_id
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.info.run_name.startswith("pipeline ")
    tags = parent.data.tags
    assert tags["pipeline.flow_run_id"] == str(state.state_details.flow_run_id)
    assert {stage: tags[f"pipeline.stage.{stage}"] for stage in STAGES} == state.result()["stages"]
    assert tags["pipeline.stage.prepare"] == "skipped (unchanged)" and tags["pipeline.stage.train"] == "ran"
    assert (tags["pipeline.gate"], tags["pipeline.champion"], tags["pipeline.model_new"]) == ("promote", "v1", "true")
    assert tags["pipeline.model"] == f"models:/{flow_project.model_name}/1"
    assert tags["pipeline.train_run_id"] == flow_project.train_run_id
    assert "Promotion gate: promote" in tags["mlflow.note.content"] and "git.commit" in tags
    assert "pipeline.error" not in tags


def test_a_rejected_model_completes_the_flow_and_says_why(flow_project, prefect_api, run):
    flow_project.train(0, quality=0.1)  # below promotion.min_quality
    state = run(flow_project, Recorder())

    summary = state.result()
    assert (summary["gate"], summary["champion"]) == ("reject", None)
    assert "mmeb_p_at_1 0.1000 < minimum 0.2000" in summary["reason"]
    assert "champion" not in flow_project.aliases()


def test_with_promote_off_the_gate_only_reports(flow_project, prefect_api, run):
    params = yaml.safe_load(flow_project.params_path.read_text())
    params["pipeline"]["promote"] = False
    flow_project.params_path.write_text(yaml.safe_dump(params))
    flow_project.train(0, quality=0.5)
    state = run(flow_project, Recorder())

    summary = state.result()
    assert (summary["gate"], summary["champion"]) == ("promote", None)
    assert flow_project.aliases() == {"challenger": "1"}
    [artifact] = [a for a in read_artifact(prefect_api, ARTIFACT_KEY)
                  if a.flow_run_id == state.state_details.flow_run_id]
    assert "no alias was moved" in artifact.data


def test_a_failed_stage_stops_the_flow_with_its_own_error(flow_project, prefect_api, run):
    flow_project.train(0, quality=0.5)
    recorder = Recorder(failures={"train": ["ParamsError: params.yaml: train.lr: must be > 0"]})
    state = run(flow_project, recorder)

    assert state.is_failed()
    with pytest.raises(StageFailed, match="(?s)stage 'train' failed .*train.lr: must be > 0"):
        state.result()
    assert recorder.calls == ["data ensure", "prepare", "train"]  # not retried: it would fail again
    assert not flow_project.client().search_registered_models(f"name = '{flow_project.model_name}'")
    parent = flow_project.client().get_run(recorder.envs["train"][PARENT_RUN_ENV])
    assert parent.info.status == "FAILED" and parent.data.tags["pipeline.error"] == "stage 'train' failed (exit 1); its last output:"
    assert parent.data.tags["pipeline.stage.prepare"] == "ran" and "pipeline.stage.train" not in parent.data.tags


def test_a_transient_failure_is_retried(flow_project, prefect_api, run):
    flow_project.train(0, quality=0.5)
    recorder = Recorder(failures={"prepare": ["sqlite3.OperationalError: database is locked"]})
    state = run(flow_project, recorder)

    assert state.is_completed(), state.message
    assert recorder.calls == ["data ensure", "prepare", "prepare", "train", "evaluate", "sweep", "index"]
    # The team Prefect server records the retry: two runs of the task, with the wait between them.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterName

    with get_client(sync_client=True) as client:
        [task_run] = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=["dvc repro prepare"])))
        history = [past.name for past in client.read_task_run_states(task_run.id)]
    assert task_run.run_count == 2 and task_run.state.is_completed()
    assert "AwaitingRetry" in history, history


def test_a_stage_missing_from_dvc_yaml_stops_the_flow_before_anything_runs(flow_project, prefect_api, run):
    (flow_project.root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"prepare": {"cmd": "true"}}}))
    recorder = Recorder()
    state = run(flow_project, recorder)

    assert state.is_failed()
    with pytest.raises(ValueError, match=r"pipeline.stages lists \['train', 'evaluate', 'sweep', 'index'\]"):
        state.result()
    assert recorder.calls == []


def test_stages_go_through_dvc_which_skips_unchanged_ones_and_reports_failures(tmp_path, capsys):
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "input.txt").write_text("1\n")
    stages = {
        "double": {"cmd": "python -c \"print(int(open('input.txt').read()) * 2)\" > out.txt",
                   "deps": ["input.txt"], "outs": ["out.txt"]},
        "broken": {"cmd": "python -c \"import sys; sys.exit('no such column: quality')\"", "deps": ["out.txt"]},
    }
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))

    assert dvc_stage.fn("double", str(tmp_path)) == "ran"
    assert (tmp_path / "out.txt").read_text() == "2\n"
    assert dvc_stage.fn("double", str(tmp_path)) == "skipped (unchanged)"
    # Printed, so the flow (log_prints) logs it on the task run: the Prefect UI's flow run page shows it.
    printed = capsys.readouterr().out
    assert "stage double: ran\n" in printed and "stage double: skipped (unchanged)\n" in printed
    (tmp_path / "input.txt").write_text("5\n")
    assert dvc_stage.fn("double", str(tmp_path)) == "ran"
    with pytest.raises(StageFailed, match="(?s)stage 'broken' failed .*no such column: quality") as failed:
        dvc_stage.fn("broken", str(tmp_path))
    assert not failed.value.transient


def test_the_parent_run_reaches_the_stage_command_and_stays_out_of_dvc_lock(tmp_path):
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "input.txt").write_text("1\n")
    show = f"python -c \"import os; print(os.environ.get('{PARENT_RUN_ENV}', 'none'))\" > parent.txt"
    stage = {"cmd": show, "deps": ["input.txt"], "outs": ["parent.txt"]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"show": stage}}))

    assert dvc_stage.fn("show", str(tmp_path)) == "ran"  # as `dvc repro` outside the flow: no parent
    assert (tmp_path / "parent.txt").read_text() == "none\n"
    lock = (tmp_path / "dvc.lock").read_text()
    assert dvc_stage.fn("show", str(tmp_path), "run-1") == "skipped (unchanged)"  # a parent is no change
    assert (tmp_path / "dvc.lock").read_text() == lock
    (tmp_path / "input.txt").write_text("2\n")
    assert dvc_stage.fn("show", str(tmp_path), "run-2") == "ran"
    assert (tmp_path / "parent.txt").read_text() == "run-2\n"
    written = yaml.safe_load((tmp_path / "dvc.lock").read_text())
    assert written["stages"]["show"]["cmd"] == show and "run-2" not in (tmp_path / "dvc.lock").read_text()


# --- a store URI with a password never reaches the summary, the console or an error ---------------

SECRET_URI = "http://alice:s3cret@mlflow.internal:5000"


def test_the_summary_artifact_masks_the_store_password(flow_project, prefect_api, run, monkeypatch):
    import dataclasses

    from metaembed.registry import register as register_module

    real = register_module.register
    monkeypatch.setattr(register_module, "register",
                        lambda *args: dataclasses.replace(real(*args), tracking_uri=SECRET_URI))
    flow_project.train(0, quality=0.5)
    state = run(flow_project, Recorder())

    assert state.is_completed(), state.message
    [artifact] = [a for a in read_artifact(prefect_api, ARTIFACT_KEY)
                  if a.flow_run_id == state.state_details.flow_run_id]
    assert "`http://alice:***@mlflow.internal:5000`" in artifact.data
    assert "s3cret" not in artifact.data


def test_a_registry_error_naming_the_store_is_masked_and_still_retried(flow_project, prefect_api, run, monkeypatch):
    from metaembed.registry import register as register_module
    from metaembed.registry.store import RegistryError

    calls = []

    def unreachable(*args):
        calls.append(args)
        raise RegistryError(f"registering failed against the registry at {SECRET_URI}: connection reset")

    monkeypatch.setattr(register_module, "register", unreachable)
    state = run(flow_project, Recorder())

    assert state.is_failed() and len(calls) == 2  # a RegistryError is transient: retried once
    masked = r"at http://alice:\*\*\*@mlflow.internal:5000: connection reset"
    with pytest.raises(RegistryError, match=masked) as raised:
        state.result()
    assert "s3cret" not in str(raised.value) and "s3cret" not in state.message
