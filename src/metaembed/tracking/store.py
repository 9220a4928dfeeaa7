"""Where runs go: the `tracking:` section of params.yaml, the experiment, and run lookup."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import BaseModel, ConfigDict, Field

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
_SQLITE = "sqlite:///"

# mlflow.set_tracking_uri (called by configure and by Lightning's logger) also writes
# MLFLOW_TRACKING_URI into os.environ. Remembering what we derived from params lets us tell
# that echo apart from a real override, so a later configure() with other params still works.
_derived_from_params: set[str] = set()


class TrackingError(RuntimeError):
    """The tracking store is in a state this code will not silently work around."""


class TrackingParams(BaseModel):
    """params.yaml `tracking:`. Relative paths are resolved against the project root."""

    model_config = ConfigDict(extra="forbid")

    tracking_uri: str = Field("sqlite:///mlflow.db", min_length=1)
    artifact_location: str = Field("mlartifacts", min_length=1)
    experiment: str = Field("metaembed", min_length=1)
    system_metrics: bool = True


def resolve_tracking_uri(params: TrackingParams, root: str | Path = ".") -> str:
    """`MLFLOW_TRACKING_URI` if set (e.g. a team `mlflow server`), else params' URI made absolute.

    Absolute paths matter because DVC, Prefect and pytest may run us from different folders.
    """
    override = os.environ.get(TRACKING_URI_ENV, "").strip()
    if override and override not in _derived_from_params:
        return override
    uri = _absolute(params.tracking_uri, Path(root))
    _derived_from_params.add(uri)
    return uri


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


def configure(params: TrackingParams | None = None, root: str | Path = ".") -> str:
    """Point mlflow at the store, make sure the experiment exists, and return its id.

    Idempotent, and safe when several processes (sweep trials, DVC stages) race to create it.
    """
    params = params or TrackingParams()
    uri = resolve_tracking_uri(params, root)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(params.experiment)
    if experiment is None:
        try:
            return client.create_experiment(params.experiment, _artifact_location(params, uri, root))
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        # Another process created it between our lookup and our create.
        experiment = client.get_experiment_by_name(params.experiment)
    if experiment is None or experiment.lifecycle_stage == "deleted":
        raise TrackingError(
            f"tracking.experiment {params.experiment!r} is deleted in {uri}: restore it with "
            "`mlflow experiments restore --experiment-id <id>` or set tracking.experiment in "
            "params.yaml to a new name"
        )
    return experiment.experiment_id


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
