"""Each UI's server on a free 127.0.0.1 port, in its own process group, stopped with the group."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from metaembed.orchestration.server import stop_server

HOST = "127.0.0.1"
START_TIMEOUT_S = 180.0  # a cold MLflow or Prefect server on a busy 2-core machine takes a minute or more


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def serving(name: str, command: list[str], health: str, log: Path, env: Mapping[str, str] = {}) -> Iterator[None]:
    """Run `command` until the block ends; wait until `health` answers 200 first."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, **env})
    try:
        _wait_healthy(name, process, health, log)
        yield
    finally:
        stop_server(process)


def _wait_healthy(name: str, process: subprocess.Popen, health: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode} before answering:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(health, timeout=3) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{name} did not answer {health} in {START_TIMEOUT_S:.0f} s:\n{log.read_text()[-2000:]}")


def mlflow_command(tracking, root: Path, port: int) -> list[str]:
    from metaembed.commands.ui import server_command

    return server_command(tracking, root, port)


def prefect_command(port: int) -> tuple[list[str], dict[str, str]]:
    """`prefect server start` with its UI, and the settings that make the UI talk to this port."""
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)]
    env = {"PREFECT_UI_ENABLED": "true", "PREFECT_UI_API_URL": f"http://{HOST}:{port}/api",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_API_URL": "",
           # Looking must not schedule runs: with the scheduler on, a deployment's cron would queue
           # runs into the project's database that nobody executes.
           "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"}
    return command, env


def dashboard_command(params: Path, port: int, storage: str | None = None) -> list[str]:
    """`metaembed dashboard`: optuna-dashboard over `storage`, by default the one params.yaml `tune:` names."""
    return [sys.executable, "-m", "metaembed.cli", "dashboard", "--params", str(params), "--port", str(port),
            *(["--storage", storage] if storage else [])]
