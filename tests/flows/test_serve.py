from __future__ import annotations

import time


def test_the_deployment_gets_scheduled_runs_on_a_local_server(flow_project, prefect_api, serve_script):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deployment_id = serve_script["build_deployment"](str(flow_project.params_path)).apply()

    runs = []
    deadline = time.monotonic() + 30  # the scheduler service visits deployments every second here
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(deployment_id)
        while not runs and time.monotonic() < deadline:
            time.sleep(1)
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
    assert prefect_api.startswith("http://127.0.0.1:")
    assert deployment.name == "test-nightly" and deployment.entrypoint.endswith("flows/pipeline.py:pipeline")
    assert [schedule.schedule.cron for schedule in deployment.schedules] == ["0 3 * * *"]
    assert deployment.parameters == {"params": str(flow_project.params_path)}
    assert runs, "the scheduler created no run within 30 s"
    assert {run.state.type.value for run in runs} == {"SCHEDULED"}
    assert {(run.expected_start_time.hour, run.expected_start_time.minute) for run in runs} == {(3, 0)}
