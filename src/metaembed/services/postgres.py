"""PostgreSQL from the machine's own server binaries (Debian's `postgresql` package), in a project folder.

PostgreSQL refuses to run as root: as root, the cluster's folder belongs to the `postgres` system
user and every server command runs as that user (runuser). Unix sockets are off; the server
listens on 127.0.0.1 only and takes scram-sha-256 passwords.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from metaembed.services.processes import check_port_free
from metaembed.services.settings import DATABASES, HOST, Services, ServicesError

SYSTEM_USER = "postgres"


def binaries() -> Path:
    """The folder holding pg_ctl and initdb: METAEMBED_PG_BIN, the PATH, or Debian's layout."""
    explicit = os.environ.get("METAEMBED_PG_BIN")
    if explicit:
        if not (Path(explicit) / "pg_ctl").is_file():
            raise ServicesError(f"METAEMBED_PG_BIN={explicit} holds no pg_ctl: point it at PostgreSQL's bin folder")
        return Path(explicit)
    on_path = shutil.which("pg_ctl")
    found = [Path(on_path).parent] if on_path else []
    found += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)]
    for folder in found:
        if (folder / "pg_ctl").is_file() and (folder / "initdb").is_file():
            return folder
    raise ServicesError("no PostgreSQL server binaries (pg_ctl, initdb) found: install them "
                        "(`make services` does so with apt-get as root: apt-get install postgresql) "
                        "or set METAEMBED_PG_BIN to the folder holding pg_ctl")


def _version(folder: str) -> int:
    name = Path(folder).parent.name
    return int(name) if name.isdigit() else 0


def folder(services: Services) -> Path:
    return services.root / "postgres"


def data_dir(services: Services) -> Path:
    return folder(services) / "data"


def ensure_cluster(services: Services) -> bool:
    """initdb the cluster unless it exists; True when it was created now."""
    data = data_dir(services)
    if (data / "PG_VERSION").is_file():
        return False
    home = folder(services)
    home.mkdir(parents=True, exist_ok=True)
    password_file = home / "initdb-password"
    password_file.write_text(services.password + "\n")
    password_file.chmod(0o600)
    _own(home)
    try:
        _run_as_server([str(binaries() / "initdb"), "-D", str(data), "-U", services.user, "--pwfile",
                        str(password_file), "--auth=scram-sha-256", "-E", "UTF8", "--locale=C"],
                       "initdb")
    finally:
        password_file.unlink(missing_ok=True)
    return True


def running_port(services: Services) -> int | None:
    """The port of this cluster's running server (from postmaster.pid), or None when it is down."""
    pid_file = data_dir(services) / "postmaster.pid"
    if not pid_file.is_file():
        return None
    status = subprocess.run(_as_server([str(binaries() / "pg_ctl"), "status", "-D", str(data_dir(services))]),
                            capture_output=True, text=True, check=False)
    if status.returncode != 0:
        return None
    lines = pid_file.read_text().splitlines()
    return int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None


def start(services: Services) -> str:
    """Start the server unless it runs; make the databases and the client password file."""
    ensure_cluster(services)
    port = services.ports["postgres"]
    current = running_port(services)
    if current is not None and current != port:
        raise ServicesError(f"postgres: the cluster in {data_dir(services)} already runs on port {current}, "
                            f"not {port}: stop it first (`metaembed services stop`) or set METAEMBED_PG_PORT={current}")
    state = "reused"
    if current is None:
        check_port_free("postgres", port, "METAEMBED_PG_PORT")
        options = f"-c listen_addresses={HOST} -p {port} -c unix_socket_directories=''"
        _run_as_server([str(binaries() / "pg_ctl"), "start", "-D", str(data_dir(services)), "-w", "-t", "60",
                        "-l", str(folder(services) / "server.log"), "-o", options], "pg_ctl start")
        state = "started"
    _write_pgpass(services)
    _create_databases(services)
    return state


def stop(services: Services) -> str:
    if running_port(services) is None:
        return "not running"
    _run_as_server([str(binaries() / "pg_ctl"), "stop", "-D", str(data_dir(services)), "-m", "fast", "-w"],
                   "pg_ctl stop")
    return "stopped"


def connect(services: Services, database: str = "postgres"):
    import psycopg2

    try:
        return psycopg2.connect(host=HOST, port=services.ports["postgres"], user=services.user,
                                password=services.password, dbname=database, connect_timeout=10)
    except psycopg2.OperationalError as error:
        raise ServicesError(f"postgres on {HOST}:{services.ports['postgres']} refused {services.user!r}: "
                            f"{str(error).strip()}; the cluster in {data_dir(services)} keeps the password it "
                            "was created with (METAEMBED_PG_PASSWORD or credentials.env)") from error


def _create_databases(services: Services) -> None:
    connection = connect(services)
    connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database")
            present = {row[0] for row in cursor.fetchall()}
            for name in DATABASES:
                if name not in present:
                    cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()


def _write_pgpass(services: Services) -> None:
    secret = services.password.replace("\\", "\\\\").replace(":", "\\:")
    descriptor = os.open(services.pgpass, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(f"{HOST}:{services.ports['postgres']}:*:{services.user}:{secret}\n")


def _as_root() -> bool:
    return os.geteuid() == 0


def _as_server(command: list[str]) -> list[str]:
    return ["runuser", "-u", SYSTEM_USER, "--", *command] if _as_root() else command


def _own(path: Path) -> None:
    if not _as_root():
        return
    try:
        account = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise ServicesError(f"running as root, and there is no {SYSTEM_USER!r} system user to run PostgreSQL "
                            "as (it refuses root): install Debian's postgresql package, or run as another user") from None
    for item in [path, *path.rglob("*")]:
        os.chown(item, account.pw_uid, account.pw_gid)
    _check_reachable(path)


def _check_reachable(path: Path) -> None:
    # The server, as `postgres`, must walk down to its folder.
    for parent in path.parents:
        if not os.stat(parent).st_mode & 0o001:
            raise ServicesError(f"{parent} is closed to other users, so the {SYSTEM_USER} user cannot reach "
                                f"{path}: choose a services folder under an open path (METAEMBED_SERVICES_DIR)")


def _run_as_server(command: list[str], what: str) -> None:
    result = subprocess.run(_as_server(command), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServicesError(f"postgres: {what} failed (exit {result.returncode}): "
                            f"{(result.stderr or result.stdout).strip()[-1500:]}")
