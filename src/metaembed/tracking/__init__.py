"""The MLflow layer every stage uses: where runs go, what they record, and how to read them back.

One training writes one MLflow run, owned by rank 0 (see `lightning_logger`). Provenance tags
(`run_tags`) tie the run to a git commit, a params hash and the data the run read, so `find_run`
can tell whether anything changed since the last finished run; the data read is also the run's
dataset input (`log_prepared_input`). A pipeline flow run is one parent run (`pipeline_run`) over
the runs its stages create (`parent_tags`).

Names resolve lazily: `metaembed.tracking.params` (and so every params check) must not pull in
mlflow and lightning.
"""

from __future__ import annotations

import importlib

# Full module names, so that tests/test_dvc_deps.py sees every module these names may load.
_MODULES = {
    "metaembed.tracking.artifacts": ("is_rank_zero", "log_dict_artifact", "log_figure", "plot_loss_curve"),
    "metaembed.tracking.datasets": ("log_prepared_input", "prepared_input"),
    "metaembed.tracking.lightning": ("TrackedMLFlowLogger", "lightning_logger"),
    "metaembed.tracking.params": ("TrackingParams",),
    "metaembed.tracking.pipeline_run": ("PARENT_RUN_ENV", "parent_tags", "pipeline_run"),
    "metaembed.tracking.provenance": ("flatten_params", "prepared_tags", "run_tags", "stage_tags"),
    "metaembed.tracking.store": ("TrackingError", "TrackingServerUnreachable", "configure", "find_run",
                                 "resolve_tracking_uri"),
}
_HOMES = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
