"""Logging evaluation results onto the training's MLflow run (its id is in the train report)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from metaembed.tracking import TrackingParams, configure, log_dict_artifact, log_figure
from metaembed.tracking.redact import redact_uri

_BATCH = 1000  # MLflow's limit of metrics per log_batch call


def flatten(prefix: str, nested: Mapping[str, Any]) -> dict[str, float]:
    """{"1x1": {"p": 0.5}} -> {"<prefix>/1x1/p": 0.5}; only numbers are kept (ids, names are not metrics)."""
    flat = {}
    for key, value in nested.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat |= flatten(name, value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def log_results(run_id: str, tracking: TrackingParams, metrics: Mapping[str, float],
                dicts: Mapping[str, Mapping] = {}, figures: Mapping[str, Path] = {}, root: str | Path = ".") -> None:
    """Metrics, JSON artifacts and PNGs onto an existing run (finished runs accept them too)."""
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    configure(tracking, root)
    client = MlflowClient()
    try:
        client.get_run(run_id)
    except MlflowException:
        raise ValueError(f"MLflow run {run_id} is not in the tracking store {redact_uri(client.tracking_uri)}: the store was "
                         "reset or points elsewhere; retrain, or skip MLflow with --no-mlflow") from None
    now = int(time.time() * 1000)
    entries = [Metric(key, value, now, 0) for key, value in metrics.items()]
    for start in range(0, len(entries), _BATCH):
        client.log_batch(run_id, metrics=entries[start:start + _BATCH])
    for name, content in dicts.items():
        log_dict_artifact(run_id, content, name)
    for artifact_path, path in figures.items():
        log_figure(run_id, path, artifact_path)
