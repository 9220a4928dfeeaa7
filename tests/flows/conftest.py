"""The team Prefect server of `metaembed services` (PostgreSQL behind it) for the session, the flows, and a project.

The registry tests' project fixtures (a tiny saved model, an MLflow store, stage outputs) are
reused: the flow registers and gates for real; only the DVC stages are replaced where a test says so.
The flows are loaded from their files the way Prefect loads a deployment's entrypoint.
"""

from __future__ import annotations

import importlib.util
import os
import runpy
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
# Prefect's home (settings, local storage) for this test process, before prefect is imported.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))


def _load_registry_fixtures():
    spec = importlib.util.spec_from_file_location("registry_fixtures", REPO / "tests" / "registry" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


_registry = _load_registry_fixtures()
saved_models, store_dir, project, sweep_stage, budget_table_fixture, index_stage_fixture = (
    _registry.saved_models, _registry.store_dir, _registry.project, _registry.sweep_stage,
    _registry.budget_table_fixture, _registry.index_stage_fixture)

STAGES = ["prepare", "train", "evaluate", "sweep", "index"]


@pytest.fixture(scope="session")
def prefect_server(services) -> str:
    """The team Prefect server of `metaembed services` (PostgreSQL behind it, scheduler every second)."""
    return services.prefect_api_url


@pytest.fixture(scope="session")
def pipeline_flow():
    """flows/pipeline.py's flow, loaded from its file as a deployment's run loads it."""
    from prefect.flows import load_flow_from_entrypoint

    return load_flow_from_entrypoint(f"{REPO / 'flows' / 'pipeline.py'}:pipeline")


@pytest.fixture(scope="session")
def serve_script() -> dict:
    """flows/serve.py's functions (the script's globals, without running its main)."""
    return runpy.run_path(str(REPO / "flows" / "serve.py"))


@pytest.fixture
def prefect_api(prefect_server):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
        yield prefect_server
        # Send queued logs and events while the server is still there, not at interpreter exit.
        APILogWorker.drain_all()
        EventsWorker.drain_all()


@pytest.fixture
def flow_project(project):
    """The registry project plus a `pipeline:` section (no back-off waits) and a dvc.yaml naming the stages."""
    params = yaml.safe_load(project.params_path.read_text())
    params["pipeline"] = {"stages": STAGES, "retries": 1, "retry_delay_seconds": [0],
                          "schedule": {"deployment": "test-nightly", "cron": "0 3 * * *", "timezone": "UTC"}}
    project.params_path.write_text(yaml.safe_dump(params))
    stages = {stage: {"cmd": f"echo {stage}"} for stage in STAGES}
    (project.root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    return project
