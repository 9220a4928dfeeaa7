"""Where runs go: the `tracking:` section of params.yaml, the experiment, and run lookup."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import mlflow
import requests
import sqlalchemy
from mlflow.entities import Run
from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
    MLFLOW_HTTP_REQUEST_BACKOFF_JITTER,
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_TIMEOUT,
    MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER,
)
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.tracking.registry import UnsupportedModelRegistryStoreURIException
from mlflow.utils.file_utils import local_file_uri_to_path

from metaembed.tracking.params import TrackingParams  # noqa: F401 (re-exported)
from metaembed.tracking.redact import redact_uri, redacted_errors

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
_SQLITE = "sqlite:///"

# mlflow.set_tracking_uri (called by configure and by Lightning's logger) also writes
# MLFLOW_TRACKING_URI into os.environ. Remembering what we derived from params lets us tell
# that echo apart from a real override, so a later configure() with other params still works.
_derived_from_params: set[str] = set()


class TrackingError(RuntimeError):
    """The tracking store is in a state this code will not silently work around."""


class TrackingServerUnreachable(TrackingError, ConnectionError):
    """The tracking server did not answer within `tracking.server_timeout_s`.

    A ConnectionError too, so callers that retry dropped connections (the registry, the flow)
    still treat it as one.
    """


def resolve_tracking_uri(params: TrackingParams, root: str | Path = ".") -> str:
    """`MLFLOW_TRACKING_URI` if set (e.g. a team `mlflow server`), else params' URI made absolute.

    Absolute paths matter because DVC, Prefect and pytest may run us from different folders.
    """
    override = tracking_uri_override()
    if override:
        return override
    uri = _absolute(params.tracking_uri, Path(root))
    _derived_from_params.add(uri)
    return uri


def tracking_uri_override() -> str | None:
    """`MLFLOW_TRACKING_URI` when the user set it; None when unset, or when it is only mlflow's echo
    of a URI derived from a params file (`mlflow.set_tracking_uri` writes the variable itself)."""
    override = os.environ.get(TRACKING_URI_ENV, "").strip()
    return override if override and override not in _derived_from_params else None


def _absolute(uri: str, root: Path) -> str:
    if uri.startswith(_SQLITE) and not uri[len(_SQLITE) :].startswith("/"):
        return _SQLITE + str((root / uri[len(_SQLITE) :]).resolve())
    if "://" not in uri and not uri.startswith("file:"):
        return str((root / uri).resolve())
    return uri


def _is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def _artifact_location(params: TrackingParams, uri: str, root: str | Path) -> str | None:
    # A server decides where artifacts live (proxied or its --default-artifact-root); a local
    # folder sent from a client would only exist on the client's disk.
    if not _is_local_store(uri):
        return None
    return (Path(root) / params.artifact_location).resolve().as_uri()


# MLflow 3's UI opens an experiment of this kind on its training runs instead of the GenAI overview.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def configure(params: TrackingParams | None = None, root: str | Path = ".", *, writing: bool = True) -> str:
    """Point mlflow at the store, make sure the experiment exists, and return its id.

    Idempotent, and safe when several processes (sweep trials, DVC stages) race to create it.
    Errors name the store with its password masked. `writing=False` (a viewer such as the UI)
    skips the check that the experiment's artifact folder can take new artifacts.
    """
    params = params or TrackingParams()
    uri = resolve_tracking_uri(params, root)
    mlflow.set_tracking_uri(uri)
    with redacted_errors(), _explained(uri):
        _check_sqlite_file(uri)
        client = MlflowClient(uri)
        with _bounded_first_contact(uri, params.server_timeout_s):
            experiment = client.get_experiment_by_name(params.experiment)
        if experiment is None:
            location = _artifact_location(params, uri, root)
            if writing:
                _check_artifact_folder(location, params.experiment)
            try:
                return client.create_experiment(params.experiment, location, tags=dict([EXPERIMENT_KIND]))
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            # Another process created it between our lookup and our create.
            experiment = client.get_experiment_by_name(params.experiment)
    if experiment is None or experiment.lifecycle_stage == "deleted":
        restore = f"--experiment-id {experiment.experiment_id}" if experiment else "--experiment-id <id>"
        raise TrackingError(
            f"tracking.experiment {params.experiment!r} is deleted in {redact_uri(uri)}: restore it with "
            f"`mlflow experiments restore {restore}` or set tracking.experiment in params.yaml to a new name"
        )
    if writing:
        _check_artifact_folder(experiment.artifact_location, params.experiment)
        if EXPERIMENT_KIND[0] not in experiment.tags:  # a store made before the kind was set
            client.set_experiment_tag(experiment.experiment_id, *EXPERIMENT_KIND)
    return experiment.experiment_id


def _check_sqlite_file(uri: str) -> None:
    # mlflow retries an sqlite file it cannot open for about 100 s, then names no path.
    if not uri.startswith(_SQLITE):
        return
    path = Path(uri[len(_SQLITE) :])
    problem = None if path.is_file() else _unwritable(path, folder=False)  # a read-only file may be read
    if problem:
        raise TrackingError(
            f"tracking URI {redact_uri(uri)} (from {_source(uri)}): {path} {problem}: point it at an SQLite "
            "file in a writable folder, e.g. sqlite:///mlflow.db"
        )


def _check_artifact_folder(location: str | None, experiment: str) -> None:
    # Checked before a run starts: otherwise a training runs to the end and then fails to store
    # its plots and model.
    if not location or not location.startswith("file:"):
        return
    path = Path(local_file_uri_to_path(location))
    problem = _unwritable(path, folder=True)
    if problem:
        raise TrackingError(
            f"the artifact folder {path} of experiment {experiment!r} {problem}: make it writable, or set "
            "tracking.artifact_location to a writable folder together with a new tracking.experiment "
            "(an experiment keeps the folder it was created with)"
        )


def _unwritable(path: Path, folder: bool) -> str | None:
    """Why `path` cannot be written as a folder (or a file), or None when it can."""
    if path.exists():
        if path.is_dir() != folder:
            return "is a file, not a folder" if folder else "is a folder, not a file"
        return None if os.access(path, os.W_OK) else "is read-only"
    parent = next(parent for parent in path.parents if parent.exists())
    if not parent.is_dir():
        return f"cannot be created: {parent} is a file"
    return None if os.access(parent, os.W_OK) else f"cannot be created: {parent} is read-only"


def _is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _source(uri: str) -> str:
    return "params.yaml tracking.tracking_uri" if uri in _derived_from_params else TRACKING_URI_ENV


@contextmanager
def _bounded_first_contact(uri: str, seconds: int) -> Iterator[None]:
    """mlflow's HTTP retry policy squeezed into `seconds` for one request, then restored.

    Three tries (back-off 0 s, then 2 s, no jitter) of (seconds - 3) // 3 s each stay within
    the bound, with a second to spare, also when the host swallows packets. Later requests keep
    mlflow's patient defaults: a server that blips mid-training should not end the training.
    """
    if not _is_server(uri):
        yield
        return
    bounded = {MLFLOW_HTTP_REQUEST_MAX_RETRIES: 2, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: 1,
               MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: 0.0, MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER: False,
               MLFLOW_HTTP_REQUEST_TIMEOUT: (seconds - 3) // 3}
    try:  # patch.dict puts back the caller's environment as it was, variables set or not
        with mock.patch.dict(os.environ, {variable.name: str(value) for variable, value in bounded.items()}):
            yield
    except MlflowException as error:
        cause = error.__cause__ or error.__context__
        if not isinstance(cause, requests.exceptions.RequestException):
            raise
        raise TrackingServerUnreachable(
            f"the tracking server {redact_uri(uri)} (from {_source(uri)}) could not be reached within "
            f"tracking.server_timeout_s = {seconds} s ({_reason(cause)}): start it (`mlflow server "
            "--host 127.0.0.1 --port <port> ...`), fix the URI, or unset MLFLOW_TRACKING_URI to use the "
            "embedded store of params.yaml; raise tracking.server_timeout_s for a slow network"
        ) from None


def _reason(error: requests.exceptions.RequestException) -> str:
    # "[Errno 111] Connection refused" reads better than urllib3's nested repr around it.
    found = re.search(r"\[Errno -?\d+\] [^'\")(]+|too many \d+ error responses", str(error))
    if found:
        return found[0].strip()
    # requests reports a read time-out after retries as a ConnectionError; the text still says so.
    timed_out = isinstance(error, requests.exceptions.Timeout) or "timed out" in str(error)
    return "timed out" if timed_out else type(error).__name__


@contextmanager
def _explained(uri: str) -> Iterator[None]:
    """mlflow's errors for a URI it cannot use, reworded to say which setting to change."""
    shown, source = redact_uri(uri), _source(uri)
    try:
        yield
    except UnsupportedModelRegistryStoreURIException as error:
        scheme = uri.partition(":")[0]
        known = sorted(scheme for scheme in error.supported_uri_schemes if scheme)
        guess = difflib.get_close_matches(scheme, known, n=1)
        hint = f"did you mean {guess[0]!r}? " if guess else ""
        raise TrackingError(
            f"tracking URI {shown} (from {source}) has the scheme {scheme!r}, which mlflow cannot store "
            f"runs in: {hint}use one of {known}, e.g. sqlite:///mlflow.db or http://127.0.0.1:5000"
        ) from None
    except ModuleNotFoundError as error:
        raise TrackingError(
            f"tracking URI {shown} (from {source}) needs the Python module {error.name!r}, which is not "
            "installed: install that database driver into the venv, or use the embedded "
            "sqlite:///mlflow.db"
        ) from None
    except sqlalchemy.exc.DatabaseError as error:
        if "file is not a database" not in str(error):
            raise  # e.g. "database is locked": the flow retries those as they are
        raise TrackingError(
            f"tracking URI {shown} (from {source}) names a file that is not an SQLite database (damaged, or "
            "another kind of file): move it aside to start an empty store, or point the URI at the right file"
        ) from None


def _quoted(value: object) -> str:
    text = str(value)
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    raise ValueError(f"tag value {text!r} has both quote kinds; MLflow's search filter cannot match it")


def find_run(
    tags: Mapping[str, object], params: TrackingParams | None = None, root: str | Path = "."
) -> Run | None:
    """The newest FINISHED run of the experiment whose tags equal all of `tags`, or None."""
    params = params or TrackingParams()
    experiment_id = configure(params, root)
    clauses = [f"tags.`{key}` = {_quoted(value)}" for key, value in tags.items()]
    clauses.append("attributes.status = 'FINISHED'")
    runs = MlflowClient(resolve_tracking_uri(params, root)).search_runs(
        [experiment_id],
        filter_string=" and ".join(clauses),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None
