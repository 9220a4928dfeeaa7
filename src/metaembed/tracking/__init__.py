"""The MLflow layer every stage uses: where runs go, what they record, and how to read them back.

One training writes one MLflow run, owned by rank 0 (see `lightning_logger`). Provenance tags
(`run_tags`) tie the run to a git commit, a params hash and the data the run read, so `find_run`
can tell whether anything changed since the last finished run.

Names resolve lazily: `metaembed.tracking.params` (and so every params check) must not pull in
mlflow and lightning.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "is_rank_zero": "artifacts", "log_dict_artifact": "artifacts", "log_figure": "artifacts",
    "plot_loss_curve": "artifacts",
    "TrackedMLFlowLogger": "lightning", "lightning_logger": "lightning",
    "flatten_params": "provenance", "run_tags": "provenance",
    "TrackingParams": "params",
    "TrackingError": "store", "TrackingServerUnreachable": "store", "configure": "store", "find_run": "store",
    "resolve_tracking_uri": "store",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
