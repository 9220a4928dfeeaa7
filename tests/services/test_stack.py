import os
import stat
import subprocess
import sys

import pytest

from metaembed.services import postgres, settings, stack


def test_a_second_start_reuses_the_running_stack_on_postgres(services):
    assert stack.start_all(services) == {"postgres": "reused", "mlflow": "reused", "prefect": "reused"}
    assert {name: info["state"] for name, info in stack.status(services).items()} == {
        "postgres": "running", "mlflow": "running", "prefect": "running"}
    # MLflow and Prefect keep their tables in PostgreSQL, not in files of their own.
    for database in ("mlflow", "prefect"):
        connection = postgres.connect(services, database)
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            assert cursor.fetchone()[0] > 10, database
        connection.close()


def test_secrets_stay_in_private_files(services):
    for path in (services.root / "credentials.env", services.pgpass):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for log in (services.root / "logs").iterdir():
        assert services.password not in log.read_text(errors="replace"), log
    exports = subprocess.run([sys.executable, "-m", "metaembed.cli", "services", "env", "--dir", str(services.root)],
                             env={**os.environ, **_ports(services)}, capture_output=True, text=True, check=True).stdout
    assert services.password not in exports
    assert f"export MLFLOW_TRACKING_URI={services.tracking_uri}" in exports.splitlines()
    assert f"export PGPASSFILE={services.pgpass}" in exports.splitlines()


def test_a_taken_port_starts_nothing_and_names_the_setting(services, services_root, services_in):
    other = services_in(services_root / "other", METAEMBED_MLFLOW_PORT=str(services.ports["mlflow"]))
    with pytest.raises(settings.ServicesError, match=f"port {services.ports['mlflow']} .*taken.*METAEMBED_MLFLOW_PORT"):
        stack.start_all(other)
    assert postgres.running_port(other) is None


def test_postgres_keeps_its_data_over_a_stop_and_a_start(postgres_only):
    assert postgres.start(postgres_only) == "started"
    connection = postgres.connect(postgres_only, "optuna")
    with connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE kept (value int); INSERT INTO kept VALUES (17)")
    connection.close()
    assert postgres.stop(postgres_only) == "stopped"
    assert postgres.stop(postgres_only) == "not running"
    assert postgres.start(postgres_only) == "started"
    connection = postgres.connect(postgres_only, "optuna")
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT value FROM kept")
        assert cursor.fetchall() == [(17,)]
    connection.close()


def test_a_wrong_password_says_which_one_the_cluster_keeps(postgres_only):
    postgres.start(postgres_only)
    wrong = settings.Services(postgres_only.root, postgres_only.user, "not-the-password", postgres_only.ports)
    with pytest.raises(settings.ServicesError, match="refused 'metaembed'.*keeps the password it was created with"):
        postgres.start(wrong)


def test_missing_server_binaries_say_how_to_get_them(monkeypatch):
    monkeypatch.setenv("METAEMBED_PG_BIN", "/nonexistent/bin")
    with pytest.raises(settings.ServicesError, match="METAEMBED_PG_BIN=/nonexistent/bin holds no pg_ctl"):
        postgres.binaries()


def test_a_port_that_is_not_a_number_is_refused():
    with pytest.raises(settings.ServicesError, match="METAEMBED_PREFECT_PORT='http' is not a TCP port"):
        settings.load("/tmp/unused", {"METAEMBED_PREFECT_PORT": "http", "METAEMBED_PG_PASSWORD": "x"})


def _ports(services):
    return {"METAEMBED_PG_PORT": str(services.ports["postgres"]), "METAEMBED_MLFLOW_PORT": str(services.ports["mlflow"]),
            "METAEMBED_PREFECT_PORT": str(services.ports["prefect"])}
