"""`metaembed.load(uri)`: a ready MetaEmbed from the registry, a run, or a saved folder."""

from __future__ import annotations

import os
from pathlib import Path

from metaembed.model import CONFIG_FILE, MetaEmbed
from metaembed.registry.register import ARTIFACT_KEY
from metaembed.tracking import TrackingParams, resolve_tracking_uri
from metaembed.tracking.store import TRACKING_URI_ENV

MLFLOW_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")


def load_model(uri: str | Path, device: str = "cpu", params_path: str | Path = "params.yaml") -> MetaEmbed:
    """`models:/<name>@champion`, `models:/<name>/<version>`, `runs:/...`, or a local folder.

    MLflow URIs are read from the project's store (params.yaml `tracking:`, relative to the
    params file's folder) unless MLFLOW_TRACKING_URI is set.
    """
    text = str(uri)
    if not text.startswith(MLFLOW_SCHEMES):
        return _from_folder(Path(text), device)
    import mlflow

    _use_project_store(Path(params_path))
    model = mlflow.pyfunc.load_model(text).unwrap_python_model().model
    return model.to(device).eval()


def _from_folder(folder: Path, device: str) -> MetaEmbed:
    # A save_pretrained folder, or a pyfunc model folder (e.g. from `mlflow artifacts download`).
    for candidate in (folder, folder / "artifacts" / ARTIFACT_KEY):
        if (candidate / CONFIG_FILE).is_file():
            return MetaEmbed.from_pretrained(candidate, device=device)
    raise FileNotFoundError(f"{folder}: neither a MetaEmbed.save_pretrained folder nor a registered "
                            f"pyfunc folder (no {CONFIG_FILE}, no artifacts/{ARTIFACT_KEY}/{CONFIG_FILE}); "
                            "pass models:/<name>@champion to load from the registry")


def _use_project_store(params_path: Path) -> None:
    import mlflow

    from metaembed.config import load_section

    if os.environ.get(TRACKING_URI_ENV) or not params_path.is_file():
        return  # mlflow's own resolution: the environment, or its default store
    tracking = load_section("tracking", TrackingParams, params_path)
    uri = resolve_tracking_uri(tracking, params_path.parent)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
