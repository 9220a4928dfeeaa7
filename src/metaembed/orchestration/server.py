"""A local Prefect server (API and UI) for flows/serve.py and the flow tests: start, wait, stop."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from metaembed.services.processes import stop_group

HOST = "127.0.0.1"


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
    stop_group(server.pid)
