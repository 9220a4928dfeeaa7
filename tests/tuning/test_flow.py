"""flows/tune.py: its own logic, and the workers as flow runs of a deployment on a Prefect work pool."""

import os
import tempfile
import time

import pytest

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))  # before prefect loads


@pytest.fixture(scope="module")
def flow_module(load_flow):
    return load_flow("tune")


def test_split_trials_is_even_and_loses_none(flow_module):
    assert flow_module.split_trials(6, 2) == [3, 3]
    assert flow_module.split_trials(7, 3) == [3, 2, 2]
    assert flow_module.split_trials(2, 4) == [1, 1]
    with pytest.raises(ValueError, match="trials >= 1"):
        flow_module.split_trials(0, 2)


def test_worker_command_names_the_worker_and_storage(flow_module):
    command = flow_module._command("p.yaml", 3, 1, "sqlite:///o.db")
    assert command[1:] == ["-m", "metaembed.cli", "tune", "--params", "p.yaml", "--trials", "3", "--worker", "1",
                           "--storage", "sqlite:///o.db"]


def _tune_process(params_path, worker: int):
    import psutil

    for process in psutil.process_iter(["cmdline"]):
        line = process.info["cmdline"] or []
        if "metaembed.cli" in line and str(params_path) in line and line[line.index("--worker") + 1] == str(worker):
            return process
    return None


def _training_trial(study_name, storage, worker: int, timeout_s: float = 240):
    """`worker`'s trial once its training starts (every param sampled)."""
    import optuna

    from metaembed.tuning.space import is_complete

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            trials = optuna.load_study(study_name=study_name, storage=storage).get_trials()
        except KeyError:  # no worker has created the study yet
            trials = []
        for trial in trials:
            if trial.state.name == "RUNNING" and trial.user_attrs.get("worker") == worker and is_complete(trial.params):
                return trial
        time.sleep(0.2)
    raise AssertionError(f"worker {worker} started no trial within {timeout_s:.0f} s")


WORKERS = 3


@pytest.mark.slow
def test_three_workers_run_as_flow_runs_on_a_work_pool_lose_no_trial_and_a_killed_one_is_retried(
        flow_module, process_worker, services, tune_params, monkeypatch):
    import threading
    import uuid

    import optuna
    import yaml
    from mlflow.tracking import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowRunFilter
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from metaembed.tuning.params import TuneParams
    from metaembed.tuning.study import open_storage

    monkeypatch.setenv("PGPASSFILE", str(services.pgpass))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", services.tracking_uri)
    path = tune_params(study_name=f"pool-{uuid.uuid4().hex[:8]}", storage=services.database_url("optuna"),
                       heartbeat_interval_s=1, heartbeat_grace_s=2)
    tune = TuneParams.model_validate(yaml.safe_load(path.read_text())["tune"])
    storage = open_storage(tune, path.parent)
    deployment = f"metaembed-tune-worker/{process_worker.deployment}"

    killed = {}

    def kill_worker_0():  # beside the flow, which runs in this thread as Prefect expects
        try:
            killed["trial"] = _training_trial(tune.study_name, storage, 0)
            _tune_process(path, 0).kill()
        except Exception as error:  # reported below
            killed["error"] = error

    killer = threading.Thread(target=kill_worker_0, daemon=True)
    killer.start()
    with temporary_settings(updates={PREFECT_API_URL: process_worker.api_url}):
        try:
            state = flow_module.tune(trials=WORKERS, workers=WORKERS, params=str(path), root=str(path.parent),
                                     prepare=False, deployment=deployment, return_state=True)
        finally:  # this server's queued logs and events go out now, not into a later test's server
            APILogWorker.drain_all()
            EventsWorker.drain_all()
        killer.join(timeout=10)
        assert "error" not in killed, killed.get("error")
        assert state.is_completed(), state.message
        killed = killed["trial"]

        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id={"any_": [state.state_details.flow_run_id]}),
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[process_worker.deployment])))
            by_worker = {run.parameters["worker"]: run for run in runs}
            history = [past.name for past in client.read_flow_run_states(by_worker[0].id)]

    # Each worker was a flow run of the deployment, executed by the pool's worker, all at the same time.
    assert sorted(by_worker) == list(range(WORKERS)) and {run.state.type.value for run in runs} == {"COMPLETED"}
    assert {run.work_pool_name for run in runs} == {process_worker.pool}
    assert max(run.start_time for run in runs) < min(run.end_time for run in runs), "the flow runs did not overlap"
    # The killed worker's flow run was retried by Prefect, and its trial by the study: the killed trial
    # is FAILED (not left RUNNING), its retry completed with the same params, no trial ran twice.
    assert by_worker[0].run_count == 2 and "AwaitingRetry" in history, history
    assert [by_worker[k].run_count for k in range(1, WORKERS)] == [1] * (WORKERS - 1)
    trials = optuna.load_study(study_name=tune.study_name, storage=storage).get_trials()
    assert {t.number: t.state.name for t in trials} == {
        killed.number: "FAIL", **{t.number: "COMPLETE" for t in trials if t.number != killed.number}}
    assert len(trials) == WORKERS + 1
    [retried] = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retried.params == killed.params and retried.user_attrs["worker"] == 0
    # Each completed trial trained in its own run on the team MLflow server, which finished.
    client = MlflowClient(services.tracking_uri)
    finished = {t.user_attrs["mlflow_run_id"] for t in trials if t.state.name == "COMPLETE"}
    assert len(finished) == WORKERS and {client.get_run(run_id).info.status for run_id in finished} == {"FINISHED"}
