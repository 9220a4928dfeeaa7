"""The MLflow layer every stage uses: where runs go, what they record, and how to read them back.

One training writes one MLflow run, owned by rank 0 (see `lightning_logger`). Provenance tags
(`run_tags`) tie the run to a git commit, a params.yaml hash and the data version DVC pinned, so
`find_run` can tell whether anything changed since the last finished run.
"""

from metaembed.tracking.artifacts import is_rank_zero, log_dict_artifact, log_figure, plot_loss_curve
from metaembed.tracking.lightning import TrackedMLFlowLogger, lightning_logger
from metaembed.tracking.provenance import flatten_params, run_tags
from metaembed.tracking.store import TrackingError, TrackingParams, configure, find_run, resolve_tracking_uri

__all__ = [
    "TrackedMLFlowLogger",
    "TrackingError",
    "TrackingParams",
    "configure",
    "find_run",
    "flatten_params",
    "is_rank_zero",
    "lightning_logger",
    "log_dict_artifact",
    "log_figure",
    "plot_loss_curve",
    "resolve_tracking_uri",
    "run_tags",
]
