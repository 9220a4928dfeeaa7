"""Where a store's password could be shown: the CLI's uncaught errors, the `metaembed ui` banner, and
errors re-raised from mlflow. (The pipeline's summary and stage output: tests/flows.)"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from metaembed.commands import ui
from metaembed.tracking.redact import redact_credentials, redacted_errors

REPO = Path(__file__).resolve().parents[2]
SECRET_HTTP = "http://alice:s3cret@127.0.0.1:5000"
SECRET_DB = "postgresql://alice:s3cret@db.internal/mlflow?sslmode=require"


def params_file(tmp_path, uri: str):
    """The project's params.yaml with `uri` as the tracking store."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["tracking"]["tracking_uri"] = uri
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture(autouse=True)
def _no_override(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_the_ui_banner_for_a_server_masks_its_password(tmp_path, capsys):
    args = argparse.Namespace(params=str(params_file(tmp_path, SECRET_HTTP)), port=5000, workers=1)
    assert ui.run(args) == 0
    out = capsys.readouterr().out
    assert "open http://alice:***@127.0.0.1:5000" in out and "s3cret" not in out


def test_the_ui_banner_for_a_database_store_masks_its_password(tmp_path, capsys, monkeypatch):
    import metaembed.tracking

    launched = []
    monkeypatch.setattr(metaembed.tracking, "configure", lambda *args, **kwargs: "1")  # no database to reach here
    monkeypatch.setattr(subprocess, "run", lambda command, check: launched.append(command)
                        or subprocess.CompletedProcess(command, 0))
    args = argparse.Namespace(params=str(params_file(tmp_path, SECRET_DB)), port=5001, workers=1)
    assert ui.run(args) == 0

    out = capsys.readouterr().out
    assert "over postgresql://alice:***@db.internal/mlflow?sslmode=require" in out and "s3cret" not in out
    assert SECRET_DB in launched[0]  # the server itself still gets the real URI


def test_an_uncaught_cli_error_is_printed_with_the_password_masked(tmp_path):
    (tmp_path / "boom_command.py").write_text(textwrap.dedent(f"""
        def configure(parser):
            pass

        def run(args):
            raise ConnectionError("API request to {SECRET_HTTP}/api/2.0/mlflow/runs/get failed")
    """))
    script = ("import sys; from metaembed import cli; "
              "cli.COMMANDS.append((('boom',), 'boom_command', 'raise')); sys.exit(cli.main(['boom']))")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=120)

    assert done.returncode == 1
    assert "ConnectionError: API request to http://alice:***@127.0.0.1:5000/api" in done.stderr
    assert "s3cret" not in done.stderr + done.stdout


def test_an_mlflow_error_repeating_the_uri_is_re_raised_masked_with_its_type_and_code():
    with pytest.raises(MlflowException) as raised, redacted_errors():
        try:
            raise OSError(f"connect to {SECRET_DB} refused")
        except OSError:
            message = f"API request to {SECRET_HTTP}/api failed"
            raise MlflowException(message, error_code=INVALID_PARAMETER_VALUE) from None

    assert type(raised.value) is MlflowException and raised.value.error_code == "INVALID_PARAMETER_VALUE"
    assert str(raised.value) == "API request to http://alice:***@127.0.0.1:5000/api failed"
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_an_error_whose_chain_holds_the_password_is_masked_too():
    class StoreDown(RuntimeError):
        pass

    with pytest.raises(StoreDown) as raised, redacted_errors():
        try:
            raise OSError(f"could not reach {SECRET_DB}")
        except OSError as error:
            raise StoreDown("opening the tracking store failed") from error

    assert str(raised.value) == "opening the tracking store failed" and raised.value.__cause__ is None


def test_an_error_without_credentials_is_left_alone():
    original = ValueError("tracking.experiment 'x' is deleted in sqlite:////tmp/mlflow.db")
    with pytest.raises(ValueError) as raised, redacted_errors():
        raise original
    assert raised.value is original


@pytest.mark.parametrize(("text", "masked"), [
    (f"open {SECRET_HTTP} now", "open http://alice:***@127.0.0.1:5000 now"),
    ("'postgresql://u:p@ss@db/x'", "'postgresql://u:***@db/x'"),  # a password holding "@"
    ("https://host/x?token=abc&page=2", "https://host/x?token=***&page=2"),
    ("sqlite:////tmp/a.db and http://127.0.0.1:5000", "sqlite:////tmp/a.db and http://127.0.0.1:5000"),
])
def test_redact_credentials_masks_every_uri_in_free_text(text, masked):
    assert redact_credentials(text) == masked
