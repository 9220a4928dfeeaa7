"""Run the pipeline on its cron schedule: `make serve` (python flows/serve.py [--params params.yaml]).

Unless PREFECT_API_URL names a Prefect server, this starts one on 127.0.0.1 (port
`pipeline.schedule.port`, UI included, database under PREFECT_HOME), then creates the deployment
`metaembed-pipeline/<pipeline.schedule.deployment>` with the cron schedule of params.yaml
`pipeline.schedule` and serves it: scheduled runs (and runs started from the UI) execute on this
machine until Ctrl-C, which also stops the server and pauses the schedule.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))  # before prefect reads its settings

from metaembed.config import load_section  # noqa: E402
from metaembed.orchestration.params import PipelineParams  # noqa: E402
from metaembed.orchestration.server import HOST, check_scheduler_can_run, start_server, stop_server  # noqa: E402

# The flow is loaded from its file by Prefect (as a scheduled run will be), not imported from a
# sibling script: flows/ is not a package.
PIPELINE_ENTRYPOINT = f"{ROOT / 'flows' / 'pipeline.py'}:pipeline"


def build_deployment(params: str = "params.yaml"):
    """The scheduled deployment of the pipeline flow (not yet sent to any server)."""
    from prefect.deployments.runner import RunnerDeployment
    from prefect.schedules import Cron

    path = Path(params) if Path(params).is_absolute() else ROOT / params
    schedule = load_section("pipeline", PipelineParams, path).schedule
    return RunnerDeployment.from_entrypoint(
        PIPELINE_ENTRYPOINT,
        name=schedule.deployment,
        schedules=[Cron(schedule.cron, timezone=schedule.timezone)],
        parameters={"params": str(params)},
        description="prepare -> train -> evaluate -> sweep -> index (DVC) -> register -> promotion gate",
    )


def main(argv: list[str] | None = None) -> int:
    import argparse

    from prefect import serve
    from prefect.settings import PREFECT_API_URL, temporary_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file, relative to the project root")
    args = parser.parse_args(argv)
    os.chdir(ROOT)  # --params and the flow runs' working directory are relative to the project
    deployment = build_deployment(args.params)
    url, server = os.environ.get("PREFECT_API_URL"), None
    if not url:
        check_scheduler_can_run()
        port = load_section("pipeline", PipelineParams, args.params).schedule.port
        print(f"starting a Prefect server on http://{HOST}:{port} (UI and API)", flush=True)
        (ROOT / ".prefect").mkdir(exist_ok=True)
        server = start_server(port, log=ROOT / ".prefect" / "server.log")
        url = f"http://{HOST}:{port}/api"
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            os.environ["PREFECT_API_URL"] = url  # for the flow-run subprocesses
            serve(deployment)
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            stop_server(server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
