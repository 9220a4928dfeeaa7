"""Fan-out as flow runs: one run of a deployment per job, all at once, executed by whichever workers
of its work pool pick them up (flows/deploy.py), each awaited as a subflow of the calling flow.

Without a deployment the same jobs run here, one process each (the single-machine default).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait


class FlowRunFailed(RuntimeError):
    """A fanned-out flow run ended in a state other than Completed."""


@task(name="flow-run", task_run_name="{label}", cache_policy=NO_CACHE)
def deployment_run(deployment: str, parameters: dict[str, Any], label: str) -> str:
    """One run of `deployment` (flow name/deployment name), awaited; its id, or FlowRunFailed."""
    from prefect.deployments import run_deployment

    run = run_deployment(deployment, parameters=parameters, flow_run_name=label, timeout=None, poll_interval=2)
    if not run.state.is_completed():
        raise FlowRunFailed(f"{label}: flow run {run.name} ({run.id}) of {deployment} ended {run.state.name}: "
                            f"{run.state.message or 'no message'}; its logs are in the Prefect UI")
    return str(run.id)


def fan_out(jobs: Mapping[str, dict[str, Any]], deployment: str | None, local: Callable[..., Any]) -> list[Any]:
    """Every job (label -> parameters) as a flow run of `deployment`, concurrently; or, without one,
    `local(**parameters)` submitted as tasks here. Raises the first failure once all have ended."""
    if deployment:
        futures = [deployment_run.submit(deployment, parameters, label) for label, parameters in jobs.items()]
    else:
        futures = [local.submit(**parameters) for parameters in jobs.values()]
    wait(futures)  # every job ends before a failure is raised, so none is left running unobserved
    return [future.result() for future in futures]
