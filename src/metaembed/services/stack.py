"""Start, stop and report the three services in order: PostgreSQL, then MLflow and Prefect on it."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from metaembed.services import postgres
from metaembed.services.processes import answers, check_port_free, launch, running_pid, stop_group, wait_healthy
from metaembed.services.settings import HOST, Services, ServicesError


@dataclass(frozen=True)
class Server:
    """An HTTP service started from the venv's Python, owned through its pid file."""

    name: str
    port_variable: str
    health_path: str

    def pid_file(self, services: Services) -> Path:
        return services.root / f"{self.name}.pid"

    def log(self, services: Services) -> Path:
        return services.root / "logs" / f"{self.name}.log"

    def url(self, services: Services) -> str:
        return f"http://{HOST}:{services.ports[self.name]}"


MLFLOW = Server("mlflow", "METAEMBED_MLFLOW_PORT", "/health")
PREFECT = Server("prefect", "METAEMBED_PREFECT_PORT", "/api/health")


def _mlflow_command(services: Services) -> tuple[list[str], dict[str, str]]:
    artifacts = services.root / "mlartifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "mlflow", "server", "--host", HOST, "--port", str(services.ports["mlflow"]),
               "--backend-store-uri", services.database_url("mlflow"),
               # Clients upload through the server (mlflow-artifacts:/), so no client needs the folder.
               "--serve-artifacts", "--artifacts-destination", str(artifacts),
               "--workers", os.environ.get("METAEMBED_MLFLOW_WORKERS", "2")]
    return command, {"PGPASSFILE": str(services.pgpass)}


def _prefect_command(services: Services) -> tuple[list[str], dict[str, str]]:
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", HOST,
               "--port", str(services.ports["prefect"])]
    secret_url = (f"postgresql+asyncpg://{services.user}:{services.password}@{HOST}:"
                  f"{services.ports['postgres']}/prefect")
    return command, {"PREFECT_HOME": str(services.root / "prefect"),
                     "PREFECT_SERVER_DATABASE_CONNECTION_URL": secret_url,
                     "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                     "PREFECT_SERVER_UI_API_URL": f"{PREFECT.url(services)}/api"}


COMMANDS = {MLFLOW: _mlflow_command, PREFECT: _prefect_command}


def start_server(services: Services, server: Server, timeout_s: float = 180) -> str:
    """'reused' when our process already answers, 'started' otherwise; an error when the port is taken."""
    pid_file = server.pid_file(services)
    health = server.url(services) + server.health_path
    if running_pid(pid_file) is not None:
        if answers(health):
            return "reused"
        raise ServicesError(f"{server.name}: process {pid_file.read_text().strip()} from {pid_file} runs but "
                            f"{health} does not answer: `metaembed services stop`, then start again "
                            f"(log: {server.log(services)})")
    check_port_free(server.name, services.ports[server.name], server.port_variable)
    command, extra = COMMANDS[server](services)
    process = launch(command, pid_file, server.log(services), {**os.environ, **extra})
    try:
        wait_healthy(server.name, health, process, server.log(services), timeout_s)
    except ServicesError:
        pid_file.unlink(missing_ok=True)
        raise
    return "started"


def stop_server(services: Services, server: Server) -> str:
    pid = running_pid(server.pid_file(services))
    if pid is None:
        return "not running"
    stop_group(pid)
    server.pid_file(services).unlink(missing_ok=True)
    return "stopped"


def start_all(services: Services, names: tuple[str, ...] = ("mlflow", "prefect")) -> dict[str, str]:
    """PostgreSQL and the named servers; every port is checked first, so a taken one starts nothing."""
    services.root.mkdir(parents=True, exist_ok=True)
    servers = [server for server in (MLFLOW, PREFECT) if server.name in names]
    if postgres.running_port(services) is None:
        check_port_free("postgres", services.ports["postgres"], "METAEMBED_PG_PORT")
    for server in servers:
        if running_pid(server.pid_file(services)) is None:
            check_port_free(server.name, services.ports[server.name], server.port_variable)
    states = {"postgres": postgres.start(services)}  # the others store their data in it
    for server in servers:
        states[server.name] = start_server(services, server)
    return states


def stop_all(services: Services) -> dict[str, str]:
    states = {server.name: stop_server(services, server) for server in (PREFECT, MLFLOW)}
    states["postgres"] = postgres.stop(services)
    return states


def status(services: Services) -> dict[str, dict[str, str]]:
    port = postgres.running_port(services)
    report = {"postgres": {"state": "running" if port else "stopped",
                           "url": services.database_url("<database>")}}
    for server in (MLFLOW, PREFECT):
        pid = running_pid(server.pid_file(services))
        healthy = pid is not None and answers(server.url(services) + server.health_path)
        report[server.name] = {"state": "running" if healthy else ("not answering" if pid else "stopped"),
                               "url": server.url(services), "log": str(server.log(services))}
    return report
