"""Optuna on the team PostgreSQL (`metaembed services`): parallel workers on one study, and a worker
killed mid-trial, whose trial the heartbeat marks FAILED and the next worker retries."""

import os
import subprocess
import sys
import time
import uuid

import optuna
import yaml
from mlflow.tracking import MlflowClient

from metaembed.tuning.params import TuneParams
from metaembed.tuning.space import is_complete
from metaembed.tuning.study import open_storage

WORKERS = 3


def _worker(path, env, k: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "metaembed.cli", "tune", "--params", str(path), "--trials", "1",
                             "--worker", str(k)], cwd=path.parent, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _running_trial(study_name: str, storage, victim: subprocess.Popen, timeout_s: float = 180):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and victim.poll() is None:
        try:
            trials = optuna.load_study(study_name=study_name, storage=storage).get_trials()
        except KeyError:  # the worker has not created the study yet
            trials = []
        # Killed once its training starts (every param sampled).
        running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING and is_complete(t.params)]
        if running:
            return running[0]
        time.sleep(0.2)
    raise AssertionError(f"no trial started in time; the worker said:\n{victim.communicate()[0][-3000:]}")


def test_three_workers_lose_no_trial_and_a_killed_workers_trial_is_retried(services, tune_params, monkeypatch):
    monkeypatch.setenv("PGPASSFILE", str(services.pgpass))
    path = tune_params(study_name=f"pg-{uuid.uuid4().hex[:8]}", storage=services.database_url("optuna"),
                       heartbeat_interval_s=1, heartbeat_grace_s=2)
    tune = TuneParams.model_validate(yaml.safe_load(path.read_text())["tune"])
    storage = open_storage(tune, path.parent)
    env = os.environ | {"MLFLOW_TRACKING_URI": services.tracking_uri, "OMP_NUM_THREADS": "1"}

    victim = _worker(path, env, 0)
    killed = _running_trial(tune.study_name, storage, victim)
    victim.kill()
    victim.wait()

    workers = [_worker(path, env, k) for k in range(1, WORKERS + 1)]
    outputs = [w.communicate(timeout=400)[0] for w in workers]
    assert [w.returncode for w in workers] == [0] * WORKERS, "\n".join(o[-2500:] for o in outputs)

    trials = optuna.load_study(study_name=tune.study_name, storage=storage).get_trials()
    states = {t.number: t.state.name for t in trials}
    # The killed trial is FAILED, not left RUNNING; every worker finished one trial; numbers are unique.
    assert states == {killed.number: "FAIL", **{n: "COMPLETE" for n in range(1, WORKERS + 1)}}
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retried) == 1 and retried[0].params == killed.params
    client = MlflowClient(services.tracking_uri)
    finished = [t.user_attrs["mlflow_run_id"] for t in trials if t.state.name == "COMPLETE"]
    assert len(set(finished)) == WORKERS
    assert {client.get_run(run_id).info.status for run_id in finished} == {"FINISHED"}
