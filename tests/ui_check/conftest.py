"""A project after one pipeline flow run (the flow, register and gate for real, the DVC stages recorded as
in tests/flows) with its Prefect database in <project>/.prefect, and a multi-objective study over the
real search space (a made-up objective: no training) in <project>/artifacts/tune."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_flows = _load("flows_fixtures", REPO / "tests" / "flows" / "conftest.py")
saved_models, store_dir, project, sweep_stage, budget_table_fixture, index_stage_fixture = (
    _flows.saved_models, _flows.store_dir, _flows.project, _flows.sweep_stage, _flows.budget_table_fixture,
    _flows.index_stage_fixture)
flow_project, pipeline_flow = _flows.flow_project, _flows.pipeline_flow
_pipeline_tests = _load("pipeline_tests", REPO / "tests" / "flows" / "test_pipeline.py")
StageRuns = _pipeline_tests.StageRuns

MULTI_STUDY = "ui-multi"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def flown(flow_project, pipeline_flow, monkeypatch):
    """flow_project after `make run`'s flow on a Prefect server whose database is <project>/.prefect."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from metaembed.orchestration import stages
    from metaembed.orchestration.server import start_server, stop_server

    log_training_metrics(flow_project.client(), flow_project.train(0, quality=0.5, index_ms=2.0))
    recorder = StageRuns(flow_project, outputs={"prepare": "Stage 'prepare' didn't change, skipping"})
    monkeypatch.setattr(stages, "run_command", recorder)
    home = flow_project.root / ".prefect"
    home.mkdir()
    port = _free_port()
    server = start_server(port, env={"PREFECT_HOME": str(home), "PREFECT_API_URL": "", "PREFECT_UI_ENABLED": "false"},
                          log=flow_project.root / "prefect-run.log")
    try:
        with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{port}/api"}):
            state = pipeline_flow(params=str(flow_project.params_path), root=str(flow_project.root), return_state=True)
            APILogWorker.drain_all()  # the stage outcome lines must reach the database before it stops
            EventsWorker.drain_all()
    finally:
        stop_server(server)
    assert state.is_completed(), state.message
    return flow_project


def log_training_metrics(client, run_id: str) -> None:
    """Curves and keys shaped like a real training's and evaluation's (nested eval keys, system samples)."""
    from mlflow.entities import Metric

    curves = [Metric(key, value * (1 - step / 40), 1_700_000_000_000 + step, step) for step in range(20)
              for key, value in (("train/loss", 3.0), ("train/lr", 2e-3), ("val/p_at_1_1x1", 0.2))]
    finals = [Metric(key, 0.25, 1_700_000_000_000, 0) for key in (
        "eval/1x1/mmeb/VOC2007/p_at_1", "eval/4x8/mmeb/VOC2007/p_at_1", "eval/4x8/vidore/docvqa/ndcg_at_5",
        "system/cpu_utilization_percentage")]
    client.log_batch(run_id, metrics=curves + finals)


@pytest.fixture
def tuned(flown):
    """A finished multi-objective study of six trials in the project's tune.out_dir."""
    import optuna

    from metaembed.config import load_root
    from metaembed.tuning import space
    from metaembed.tuning.params import TuneParams
    from metaembed.tuning.study import open_storage, open_study

    params = yaml.safe_load(flown.params_path.read_text())
    params["tune"] = {**params.get("tune", {}), "study_name": MULTI_STUDY, "mode": "multi",
                      "out_dir": "artifacts/tune"}
    flown.params_path.write_text(yaml.safe_dump(params))
    tune = TuneParams.model_validate(params["tune"])
    model = load_root(flown.params_path).model
    ladder = space.ladders(tune.space, model.num_query_meta, model.num_candidate_meta)
    storage = open_storage(tune, flown.root)
    study, _ = open_study(tune, storage, optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner())

    def made_up(trial):
        chosen = space.suggest(trial, tune.space, ladder)
        return 0.1 + 0.1 * chosen["temperature"], 0.3 - chosen["lr"]

    study.optimize(made_up, n_trials=6)
    return flown
