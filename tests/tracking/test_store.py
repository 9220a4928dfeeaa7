"""configure() against stores a new user gets wrong: down, silent, failing, misspelt, driverless.

Each error must come quickly, say which setting to change, and never show the URI's password.
"""

from __future__ import annotations

import http.server
import importlib.util
import os
import socket
import threading
import time
import traceback

import mlflow
import pytest

from metaembed.tracking import TrackingError, TrackingParams, configure
from metaembed.tracking.store import TrackingServerUnreachable

BOUND_S = 6  # the smallest tracking.server_timeout_s allowed


@pytest.fixture(autouse=True)
def _isolated_tracking(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    yield
    mlflow.set_tracking_uri(None)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def failure(params: TrackingParams, tmp_path) -> tuple[BaseException, float]:
    start = time.monotonic()
    with pytest.raises(Exception) as caught:
        configure(params, tmp_path)
    return caught.value, time.monotonic() - start


def shown(error: BaseException) -> str:
    """Everything a traceback of `error` prints, chained exceptions included."""
    return "".join(traceback.format_exception(error))


def test_a_closed_port_fails_within_the_bound_naming_the_masked_uri(tmp_path):
    port = closed_port()
    params = TrackingParams(tracking_uri=f"http://alice:s3cret@127.0.0.1:{port}", server_timeout_s=BOUND_S)
    error, elapsed = failure(params, tmp_path)

    assert isinstance(error, TrackingServerUnreachable) and isinstance(error, ConnectionError)
    assert elapsed < BOUND_S, f"took {elapsed:.1f} s (mlflow alone retries for about 250 s)"
    assert f"http://alice:***@127.0.0.1:{port}" in str(error)
    assert "params.yaml tracking.tracking_uri" in str(error) and "server_timeout_s = 6 s" in str(error)
    assert "Connection refused" in str(error)  # the pipeline flow retries on this marker
    assert "s3cret" not in shown(error)
    # The tight retry policy was for the first request only: later calls keep mlflow's defaults.
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ and "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ


def test_a_server_that_never_answers_fails_within_the_bound(tmp_path):
    with socket.socket() as silent:  # accepts connections (the kernel does) and never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        error, elapsed = failure(TrackingParams(tracking_uri=f"http://127.0.0.1:{port}", server_timeout_s=BOUND_S),
                                 tmp_path)

    assert isinstance(error, TrackingServerUnreachable)
    assert elapsed < BOUND_S + 0.5, f"took {elapsed:.1f} s"
    assert "timed out" in str(error)


def test_a_server_answering_only_errors_fails_within_the_bound(tmp_path):
    class Unavailable(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the handler's protocol
            self.send_error(503)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        error, elapsed = failure(TrackingParams(tracking_uri=uri, server_timeout_s=BOUND_S), tmp_path)
    finally:
        server.shutdown()

    assert isinstance(error, TrackingServerUnreachable)
    assert elapsed < BOUND_S, f"took {elapsed:.1f} s"
    assert "too many 503 error responses" in str(error)


def test_the_override_is_named_as_the_source(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    error, _ = failure(TrackingParams(server_timeout_s=BOUND_S), tmp_path)
    assert isinstance(error, TrackingServerUnreachable) and "(from MLFLOW_TRACKING_URI)" in str(error)


@pytest.mark.parametrize(("uri", "guess"),
                         [("sqllite:///mlflow.db", "sqlite"), ("htp://bob:hunter2@host:5000", "http")])
def test_a_misspelt_scheme_names_the_setting_and_the_closest_scheme(tmp_path, uri, guess):
    error, _ = failure(TrackingParams(tracking_uri=uri), tmp_path)

    assert isinstance(error, TrackingError)
    assert f"did you mean {guess!r}?" in str(error) and "params.yaml tracking.tracking_uri" in str(error)
    assert "Model registry functionality is unavailable" not in str(error)  # mlflow's words: misleading here
    assert "hunter2" not in shown(error)


def test_a_database_uri_without_its_driver_says_what_to_install(tmp_path):
    # psycopg2 is installed (the team services run PostgreSQL); MySQL's driver is not.
    assert importlib.util.find_spec("MySQLdb") is None
    error, _ = failure(TrackingParams(tracking_uri="mysql://bob:hunter2@127.0.0.1:1/mlflow"), tmp_path)

    assert isinstance(error, TrackingError)
    assert "needs the Python module 'MySQLdb'" in str(error)
    assert "mysql://bob:***@127.0.0.1:1/mlflow" in str(error)
    assert "hunter2" not in shown(error)



# --- local stores: fail at once, naming the path, instead of after a retry loop or a training -----


def test_an_sqlite_uri_naming_a_folder_fails_at_once_naming_it(tmp_path):
    (tmp_path / "mlflow.db").mkdir()
    error, elapsed = failure(TrackingParams(tracking_uri="sqlite:///mlflow.db"), tmp_path)

    assert isinstance(error, TrackingError) and elapsed < 2, f"{type(error).__name__} after {elapsed:.0f} s"
    assert f"{tmp_path / 'mlflow.db'} is a folder, not a file" in str(error)


def test_an_sqlite_file_that_is_not_a_database_is_named(tmp_path):
    (tmp_path / "mlflow.db").write_text("version https://git-lfs.github.com/spec/v1\n")  # e.g. an LFS pointer
    error, _ = failure(TrackingParams(tracking_uri="sqlite:///mlflow.db"), tmp_path)

    assert isinstance(error, TrackingError)
    assert f"sqlite:///{tmp_path / 'mlflow.db'}" in str(error) and "not an SQLite database" in str(error)


def test_an_artifact_folder_that_cannot_be_written_stops_before_any_run(tmp_path):
    params = TrackingParams(tracking_uri="sqlite:///mlflow.db", artifact_location="mlartifacts", experiment="e")
    configure(params, tmp_path)
    (tmp_path / "mlartifacts").write_text("")  # the folder replaced by a file: nothing can be stored under it

    error, _ = failure(params, tmp_path)
    assert isinstance(error, TrackingError)
    assert f"artifact folder {tmp_path / 'mlartifacts'} of experiment 'e' is a file, not a folder" in str(error)
    assert "tracking.artifact_location" in str(error)
    other = params.model_copy(update={"experiment": "new", "artifact_location": "mlartifacts/new"})
    with pytest.raises(TrackingError, match="cannot be created: .*mlartifacts is a file"):
        configure(other, tmp_path)
    assert configure(params, tmp_path, writing=False)  # a viewer (the UI) still opens the store


def test_mlflows_echo_of_a_params_uri_is_not_taken_for_the_users_override(tmp_path, monkeypatch):
    """mlflow.set_tracking_uri writes MLFLOW_TRACKING_URI itself: a later load from another params file
    must read that file's store, not the one the previous command configured."""
    import mlflow

    from metaembed.tracking.params import TrackingParams
    from metaembed.tracking.store import resolve_tracking_uri, tracking_uri_override

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = resolve_tracking_uri(TrackingParams(tracking_uri="sqlite:///a.db"), tmp_path)
    mlflow.set_tracking_uri(first)
    assert tracking_uri_override() is None
    second = resolve_tracking_uri(TrackingParams(tracking_uri="sqlite:///b.db"), tmp_path)
    assert second.endswith("b.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking_uri_override() == "http://127.0.0.1:5999"


def test_the_experiment_is_of_the_model_training_kind_also_when_an_older_store_made_it(tmp_path):
    from mlflow.tracking import MlflowClient

    from metaembed.tracking.store import EXPERIMENT_KIND

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    params = TrackingParams(tracking_uri=uri, artifact_location=str(tmp_path / "art"), experiment="fresh")
    client = MlflowClient(uri)
    fresh = client.get_experiment(configure(params, tmp_path))
    assert fresh.tags[EXPERIMENT_KIND[0]] == "custom_model_development"
    old = client.create_experiment("old", str(tmp_path / "old"))  # as configure made it before the kind
    assert EXPERIMENT_KIND[0] not in client.get_experiment(old).tags
    assert configure(params.model_copy(update={"experiment": "old"}), tmp_path) == old
    assert client.get_experiment(old).tags[EXPERIMENT_KIND[0]] == "custom_model_development"
