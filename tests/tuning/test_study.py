import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from metaembed.tracking import TrackingParams, configure
from metaembed.tuning.study import TuneOptions, open_storage, run_study
from metaembed.tuning.params import TuneParams

REPO = Path(__file__).resolve().parents[2]


def _children(params_path: Path, parent: str):
    params = yaml.safe_load(params_path.read_text())
    client = MlflowClient(params["tracking"]["tracking_uri"])
    experiment = client.get_experiment_by_name(params["tracking"]["experiment"])
    return client, client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")


@pytest.mark.slow  # two processes, four short trainings
def test_two_worker_processes_share_one_study(tune_params):
    path = tune_params()
    # A brand-new MLflow sqlite store is not safe to create from two processes at once (both run
    # its schema migrations); projects have one already, so the test makes it first.
    params = yaml.safe_load(path.read_text())
    configure(TrackingParams.model_validate(params["tracking"]), path.parent)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-m", "metaembed.cli", "tune", "--params", str(path),
                                 "--trials", "2", "--worker", str(k)], cwd=path.parent, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for k in range(2)]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-2500:] for o in outputs)

    tune = TuneParams.model_validate(yaml.safe_load(path.read_text())["tune"])
    study = optuna.load_study(study_name=tune.study_name, storage=open_storage(tune, path.parent))
    trials = study.get_trials()
    # 2 + 2 trials: none lost, none run twice, all finished; one of them is params.yaml's own.
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert [t.user_attrs.get("source") for t in trials].count("params.yaml") == 1
    assert len({t.user_attrs["mlflow_run_id"] for t in trials}) == 4

    parent = study.user_attrs["mlflow_parent_run_id"]
    client, children = _children(path, parent)
    assert sorted(int(r.data.tags["optuna.trial"]) for r in children) == [0, 1, 2, 3]
    for run in children:
        trial = trials[int(run.data.tags["optuna.trial"])]
        assert run.info.run_id == trial.user_attrs["mlflow_run_id"]
        assert run.info.status == "FINISHED"
        assert abs(run.data.metrics["tune/mean_quality"] - trial.value) < 1e-9
        assert run.data.params["tune.num_groups"] == str(trial.params["num_groups"])
    artifacts = {a.path for a in client.list_artifacts(parent, "plots")}
    assert {"plots/history.png", "plots/importances.png"} <= artifacts

    summary = json.loads((path.parent / "tune" / tune.study_name / "summary.json").read_text())
    best = max(trials, key=lambda t: t.value)
    assert summary["best"]["number"] == best.number
    # The patch applies to the params file it was made from and sets the best trial's values.
    subprocess.run(["git", "init", "-q"], cwd=path.parent, check=True)
    subprocess.run(["git", "apply", summary["patch"]], cwd=path.parent, check=True)
    patched = yaml.safe_load(path.read_text())
    assert patched["loss"]["groups"] == [[q, c, round(w, 4)] for q, c, w in best.user_attrs["groups"]]
    assert patched["train"]["lr"] == float(f"{best.params['lr']:.3g}")
    assert Path(summary["plots"]["history"]).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_multi_objective_on_an_rdb_url_reports_the_pareto_front(tune_params):
    path = tune_params(mode="multi", study_name="pareto", enqueue_current=False)
    storage = f"sqlite:///{path.parent / 'optuna.db'}"
    summary = run_study(TuneOptions(params_path=path, trials=2, root=path.parent, progress=False,
                                    tune_overrides={"storage": storage}))
    study = optuna.load_study(study_name="pareto", storage=storage)
    assert len(study.directions) == 2 and len(study.trials) == 2
    front = {row["number"] for row in summary["pareto_front"]}
    assert front == {t.number for t in study.best_trials} and front
    for trial in study.trials:
        quality = trial.user_attrs["quality"]
        assert trial.values == [quality["1x1"], quality["4x8"]]  # smallest and largest budget
    assert Path(summary["plots"]["pareto_front"]).read_bytes()[:4] == b"\x89PNG"
    assert "best" not in summary and not (path.parent / "tune" / "pareto" / "best_params.patch").exists()


@pytest.mark.parametrize("mode, names", [("single", ["mean_quality"]), ("multi", ["quality_smallest", "quality_largest"])])
def test_a_new_study_names_its_objectives_for_the_dashboard(mode, names):
    from metaembed.tuning.study import open_study

    tune = TuneParams(mode=mode)
    storage = optuna.storages.InMemoryStorage()
    study, created = open_study(tune, storage, optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner())
    again, created_again = open_study(tune, storage, optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner())
    assert (created, created_again) == (True, False)
    assert study.metric_names == again.metric_names == names
