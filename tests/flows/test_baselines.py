"""flows/baselines.py: each variant x seed a flow run of the deployment on the work pool, then the aggregate."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def flow_module(load_flow):
    return load_flow("baselines")


def test_a_job_trains_its_run_only_and_the_aggregate_names_every_run(flow_module):
    command = flow_module.command
    job = command("p.yaml", ["train.max_steps=2"], "out", "single_vector", 1)
    assert job[-7:] == ["--out-dir", "out", "--variants", "single_vector", "--seeds", "1", "--runs-only"]
    assert job[job.index("--set") + 1] == "train.max_steps=2"
    aggregate = command("p.yaml", [], None, write_doc=False)
    assert "--runs-only" not in aggregate and aggregate[-1] == "--no-doc"


@pytest.mark.slow
def test_variants_train_as_concurrent_flow_runs_on_a_work_pool_then_aggregate(
        flow_module, baselines_params, process_worker, services, prefect_api, monkeypatch, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterKey, DeploymentFilter,
                                                DeploymentFilterName, FlowRunFilter)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", services.tracking_uri)  # the workers' store too
    state = flow_module.baselines(variants=["metaembed", "single_vector"], seeds=[0], params=str(baselines_params),
                               overrides=["train.max_steps=2"], root=str(tmp_path), prepare=False,
                               deployment=f"metaembed-baselines-run/{process_worker.deployment}", return_state=True)
    assert state.is_completed(), state.message

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id={"any_": [state.state_details.flow_run_id]}),
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[process_worker.deployment])))
        [artifact] = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["metaembed-baselines"])), flow_run_filter=FlowRunFilter(
            id={"any_": [state.state_details.flow_run_id]}))
    assert sorted(run.name for run in runs) == ["metaembed seed 0", "single_vector seed 0"]
    assert {run.state.type.value for run in runs} == {"COMPLETED"}
    assert {run.work_pool_name for run in runs} == {process_worker.pool}
    first, second = sorted(runs, key=lambda run: run.start_time)
    assert second.start_time < first.end_time, "the two runs did not train at the same time"

    # The aggregate reused both runs: their rows, the table in the results document and as an artifact.
    results = json.loads((tmp_path / "baselines" / "results.json").read_text())
    assert {(row["variant"], row["budget"]) for row in results["rows"]} == {
        ("metaembed", "1x1"), ("metaembed", "2x4"), ("single_vector", "1x1")}
    assert {run["run_dir"] for run in results["runs"]} == {
        str(tmp_path / "baselines" / "metaembed" / "seed0"), str(tmp_path / "baselines" / "single_vector" / "seed0")}
    assert "single_vector (single vector)" in (tmp_path / "results.md").read_text()
    assert "single_vector (single vector)" in artifact.data


def test_without_a_deployment_the_runs_go_one_after_another_then_the_aggregate(
        flow_module, prefect_api, monkeypatch, tmp_path):
    calls, running = [], []

    def run_command(command, cwd, stage):
        running.append(stage)
        assert len(running) == 1, f"{running} at once"
        time.sleep(0.2)  # long enough for a second job to start, were they concurrent
        calls.append(running.pop())
        return "| table |"

    monkeypatch.setattr(flow_module, "run_command", run_command)
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())

    state = flow_module.baselines(variants=["metaembed", "single_vector"], seeds=[0, 1], params=str(params),
                             root=str(tmp_path), prepare=False, return_state=True)
    assert state.is_completed(), state.message
    assert calls == ["baselines metaembed seed 0", "baselines single_vector seed 0", "baselines metaembed seed 1",
                     "baselines single_vector seed 1", "baselines aggregate"]
    assert state.result() == "| table |"
