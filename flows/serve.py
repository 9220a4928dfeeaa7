"""Run the pipeline on its cron schedule: `make serve` (python flows/serve.py [--params params.yaml]).

Unless PREFECT_API_URL names a Prefect server, this starts one on 127.0.0.1 (port
`pipeline.schedule.port`, UI included, database under PREFECT_HOME), then creates the deployment
`metaembed-pipeline/<pipeline.schedule.deployment>` with the cron schedule of params.yaml
`pipeline.schedule` and serves it: scheduled runs (and runs started from the UI) execute on this
machine until Ctrl-C, which also stops the server and pauses the schedule.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import pipeline as pipeline_flow  # noqa: E402 - sets PREFECT_HOME before prefect is imported

from metaembed.config import load_section  # noqa: E402

HOST = "127.0.0.1"


def build_deployment(params: str = "params.yaml"):
    """The scheduled deployment of the pipeline flow (not yet sent to any server)."""
    from prefect.schedules import Cron

    path = Path(params) if Path(params).is_absolute() else pipeline_flow.ROOT / params
    schedule = load_section("pipeline", pipeline_flow.PipelineParams, path).schedule
    return pipeline_flow.pipeline.to_deployment(
        name=schedule.deployment,
        schedules=[Cron(schedule.cron, timezone=schedule.timezone)],
        parameters={"params": str(params)},
        description="prepare -> train -> evaluate -> sweep (DVC) -> register -> promotion gate",
    )


def start_server(port: int, env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    """`prefect server start` on 127.0.0.1:port in its own process group; returns once healthy."""
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)]
    sink = log.open("w") if log else None
    server = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=sink, stderr=subprocess.STDOUT,
                              start_new_session=True)
    url = f"http://{HOST}:{port}/api"
    deadline = time.monotonic() + float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", 120))
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log.read_text()[-2000:] if log else ""
            raise RuntimeError(f"prefect server exited with {server.returncode} (is port {port} taken?)\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"prefect server on {url} not healthy in time")


def check_scheduler_can_run() -> None:
    """Prefect 3.8.8's scheduler service fails on every tick under SQLAlchemy 2.1 (its FlowRun.state
    hybrid has no bulk_dml): the schedule would exist and never produce a run. Say so up front."""
    from importlib.metadata import version

    found = version("sqlalchemy")
    if tuple(int(part) for part in found.split(".")[:2]) >= (2, 1):
        raise RuntimeError(f"SQLAlchemy {found} is installed: the local Prefect server's scheduler cannot create "
                           "runs with it; install sqlalchemy<2.1 (`pip install 'sqlalchemy<2.1'`) and retry")


def stop_server(server: subprocess.Popen) -> None:
    # The server runs uvicorn (and services) as children: signal the group we started.
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    import argparse

    from prefect import serve
    from prefect.settings import PREFECT_API_URL, temporary_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file, relative to the project root")
    args = parser.parse_args(argv)
    os.chdir(pipeline_flow.ROOT)  # the deployment's entrypoint is flows/pipeline.py, relative to here
    deployment = build_deployment(args.params)
    url, server = os.environ.get("PREFECT_API_URL"), None
    if not url:
        check_scheduler_can_run()
        port = load_section("pipeline", pipeline_flow.PipelineParams, args.params).schedule.port
        print(f"starting a Prefect server on http://{HOST}:{port} (UI and API)", flush=True)
        (pipeline_flow.ROOT / ".prefect").mkdir(exist_ok=True)
        server = start_server(port, log=pipeline_flow.ROOT / ".prefect" / "server.log")
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
