"""The Prefect pages of the newest pipeline flow run (its tasks and their outcomes, the summary artifact)
and of the scheduled deployment, read through the server's REST API."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

from metaembed.ui_check.pages import Missing, PageCheck

FLOW = "metaembed-pipeline"
ARTIFACT_KEY = "metaembed-pipeline"  # metaembed.orchestration.registry_steps.ARTIFACT_KEY
STAGE_LINE = re.compile(r"^stage (\S+): (.+)$")  # what dvc_stage logs: "stage train: ran"


def api(url: str, path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/api{path}", data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def newest_flow_run(url: str) -> dict:
    runs = api(url, "/flow_runs/filter", {"flows": {"name": {"any_": [FLOW]}}, "sort": "START_TIME_DESC", "limit": 1,
                                          "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}})
    if not runs:
        raise Missing(f"no completed {FLOW} flow run in the Prefect database: run `make run` first")
    return runs[0]


def flow_run_pages(url: str) -> list[PageCheck]:
    run = newest_flow_run(url)
    tasks = api(url, "/task_runs/filter", {"flow_runs": {"id": {"any_": [run["id"]]}}})
    logs = api(url, "/logs/filter", {"logs": {"flow_run_id": {"any_": [run["id"]]}}, "limit": 200})
    outcomes = [line for log in logs if STAGE_LINE.match(line := log["message"].strip())]
    if not outcomes:
        raise Missing(f"flow run {run['name']!r} logged no stage outcomes (`stage <name>: ran`): it predates "
                      "them; run `make run` again")
    page = PageCheck("prefect-flow-run-tasks-and-stage-outcomes", f"{url}/runs/flow-run/{run['id']}",
                     shows=[run["name"], FLOW, run["state_name"], f"{len(tasks)} Task runs",
                            *(task["name"] for task in tasks), *outcomes], height=1400)
    return [page, artifact_page(url, run)]


def artifact_page(url: str, run: dict) -> PageCheck:
    found = api(url, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]},
                                                         "key": {"any_": [ARTIFACT_KEY]}}})
    if not found:
        raise Missing(f"flow run {run['name']!r} has no {ARTIFACT_KEY!r} artifact: it stopped before the summary")
    artifact = found[0]
    rows = stage_rows(artifact["data"])
    return PageCheck("prefect-pipeline-summary-artifact", f"{url}/artifacts/artifact/{artifact['id']}",
                     shows=["metaembed pipeline", *(f"{stage} {status}" for stage, status in rows), "Model",
                            "Promotion gate", run["name"]], height=1600)


def stage_rows(markdown: str) -> list[tuple[str, str]]:
    """The (stage, status) rows of the summary's first table."""
    rows = []
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] not in ("stage", "") and not set(cells[0]) <= set("-: "):
            rows.append((cells[0], cells[1]))
        elif rows:
            break
    return rows


def deployment_page(url: str, name: str, cron: str) -> PageCheck:
    deployment = api(url, f"/deployments/name/{FLOW}/{name}")
    schedules = [entry["schedule"].get("cron") for entry in deployment.get("schedules", [])]
    if cron not in schedules:
        raise Missing(f"deployment {FLOW}/{name} has schedules {schedules}, not {cron!r}: run `make serve` once")
    words = cron_words(cron)
    return PageCheck(f"prefect-deployment-{name}-schedule", f"{url}/deployments/deployment/{deployment['id']}",
                     shows=[name, FLOW, "Schedules", *([words] if words else [])],
                     markup=[r'deployment-schedule-card__content[^>]*>\s*[^<\s]'])


def cron_words(cron: str) -> str | None:
    """How the Prefect UI words a daily cron ("0 3 * * *" -> "At 03:00 AM every day"); None for other forms."""
    match = re.fullmatch(r"(\d+) (\d+) \* \* \*", cron.strip())
    if not match:
        return None
    minute, hour = int(match[1]), int(match[2])
    return f"At {(hour % 12) or 12:02d}:{minute:02d} {'AM' if hour < 12 else 'PM'} every day"


def has_deployment(url: str, name: str) -> bool:
    import urllib.error

    try:
        api(url, f"/deployments/name/{FLOW}/{name}")
        return True
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return False
        raise


def ensure_deployment(url: str, name: str, serve_script: Path, params: Path) -> bool:
    """Register the deployment flows/serve.py serves, paused as `make serve` leaves it after Ctrl-C,
    when the database has none: `make run` alone creates no deployment. True when it did."""
    import runpy

    from prefect.settings import PREFECT_API_URL, temporary_settings

    if has_deployment(url, name):
        return False
    if not serve_script.is_file():
        raise Missing(f"no deployment {FLOW}/{name} and no {serve_script} to build it from: run `make serve` once")
    root = serve_script.resolve().parents[1]
    # Relative, as `make serve` passes it: its own apply later then changes nothing but the pause.
    deployment = runpy.run_path(str(serve_script))["build_deployment"](
        str(params.relative_to(root) if params.is_relative_to(root) else params))
    deployment.paused = True
    with temporary_settings(updates={PREFECT_API_URL: f"{url}/api"}):
        deployment.apply()
    return True
