"""flows/deploy.py: the work pool and the three deployments on a real Prefect server, applied twice."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_the_pool_holds_the_three_deployments_run_in_the_checkout(process_worker, prefect_api):
    from prefect.client.orchestration import get_client

    script = runpy.run_path(str(REPO / "flows" / "deploy.py"))
    assert script["ensure_pool"](process_worker.pool) is False  # made by the fixture's deploy: kept
    again = script["deploy"](process_worker.deployment, process_worker.pool, REPO)  # idempotent: same ids

    names = {f"{flow}/{process_worker.deployment}" for flow in
             ("metaembed-pipeline", "metaembed-tune-worker", "metaembed-baselines-run")}
    assert set(again) == names
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool(process_worker.pool)
        deployments = {name: client.read_deployment_by_name(name) for name in names}
    assert pool.type == "process"
    for name, deployment in deployments.items():
        assert str(deployment.id) == again[name]
        assert deployment.work_pool_name == process_worker.pool
        assert deployment.job_variables == {"working_dir": str(REPO)}
        assert Path(deployment.entrypoint.split(":")[0]).parent == REPO / "flows"
    assert deployments[f"metaembed-pipeline/{process_worker.deployment}"].entrypoint.endswith("pipeline.py:pipeline")


def test_deploying_without_a_server_says_how_to_get_one(monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(updates={PREFECT_API_URL: None}):
        with pytest.raises(SystemExit, match="PREFECT_API_URL is not set.*make services"):
            runpy.run_path(str(REPO / "flows" / "deploy.py"))["deploy"]()
