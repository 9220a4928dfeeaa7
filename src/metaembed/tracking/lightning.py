"""Lightning's MLFlowLogger bound to our store, with system metrics and dotted params.

Rank 0 only: Lightning wraps `MLFlowLogger.experiment` in `rank_zero_experiment` and its log
methods in `rank_zero_only`, so on other ranks the logger hands out a dummy experiment, never
creates a run, and its `run_id` is None. The run is created lazily on first use, after the
strategy has set the global rank, so building the logger on every DDP process is safe.
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from mlflow.entities import Param
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_PARAMS_TAGS_PER_BATCH

from metaembed.tracking.artifacts import is_rank_zero
from metaembed.tracking.datasets import log_prepared_input
from metaembed.tracking.pipeline_run import parent_tags
from metaembed.tracking.provenance import flatten_params
from metaembed.tracking.store import TrackingParams, configure, resolve_tracking_uri

# mlflow samples every 10 s by default and publishes nothing for the interval in progress when
# the run ends, so a run under 10 s gets no points; 5 s gives a one-minute run about 11.
# MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL, when set, still wins.
DEFAULT_SAMPLING_INTERVAL_S = 5.0


class TrackedMLFlowLogger(MLFlowLogger):
    """MLFlowLogger that samples system metrics into its run and logs params as `train.lr`.

    mlflow's `log_system_metrics=True` only applies to `mlflow.start_run`; Lightning creates
    its run through `MlflowClient.create_run`, so the monitor is attached here instead. With
    `data_context`, the prepared folder named by the run's tags (`data.path`) is logged as the
    run's dataset input once the run exists.
    """

    def __init__(self, *, tracking_uri: str, system_metrics: bool = True, data_context: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(tracking_uri=tracking_uri, **kwargs)
        self._monitor_uri = tracking_uri
        self._monitor_pending = system_metrics
        self._monitor: SystemMetricsMonitor | None = None
        self._data_context = data_context

    @property
    @rank_zero_experiment
    def experiment(self) -> MlflowClient:
        client = super().experiment
        if self._monitor_pending:
            self._monitor_pending = False  # before `run_id`, which re-enters this property
            self._monitor = SystemMetricsMonitor(
                self.run_id, sampling_interval=DEFAULT_SAMPLING_INTERVAL_S, tracking_uri=self._monitor_uri
            )
            self._monitor.start()
        if self._data_context:
            context, self._data_context = self._data_context, None  # before `run_id`, as above
            log_prepared_input(client, self.run_id, self.tags or {}, context)
        return client

    def __getstate__(self) -> dict[str, Any]:
        # ddp_spawn pickles the logger into its workers; the sampling thread (unpicklable, and
        # one per machine is enough) stays with the parent process.
        state = dict(super().__getstate__())
        state.update(_monitor=None, _monitor_pending=False)
        return state

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any] | Namespace) -> None:
        # Lightning's version flattens with "/" and cuts values at 250 chars without a marker.
        flat = flatten_params(vars(params) if isinstance(params, Namespace) else params)
        entries = [Param(key, value) for key, value in flat.items()]
        for start in range(0, len(entries), MAX_PARAMS_TAGS_PER_BATCH):
            self.experiment.log_batch(self.run_id, params=entries[start : start + MAX_PARAMS_TAGS_PER_BATCH])

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        # Flush the last system-metric samples before the run is marked terminated.
        if self._monitor is not None:
            self._monitor.finish()
            self._monitor = None
        super().finalize(status)


def lightning_logger(
    params: TrackingParams | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    *,
    root: str | Path = ".",
    run_id: str | None = None,
    data_context: str | None = None,
) -> TrackedMLFlowLogger:
    """The training run's logger: configured store and experiment, `log_model=False`.

    `run_id` continues an existing run (a resumed training). Read `logger.run_id` after
    `trainer.fit` (None off rank 0) to log more to the same run. A new run started by the pipeline
    flow is its pipeline run's child (`parent_tags`; explicit `tags` win). With `data_context`
    (e.g. "training"), the `data.path` folder of `tags` becomes the run's dataset input.
    """
    params = params or TrackingParams()
    if is_rank_zero():
        configure(params, root)  # race-safe creation, so the logger only ever looks it up
    return TrackedMLFlowLogger(
        experiment_name=params.experiment,
        run_name=run_name,
        tracking_uri=resolve_tracking_uri(params, root),
        tags=parent_tags() | dict(tags or {}),
        log_model=False,
        system_metrics=params.system_metrics,
        run_id=run_id,
        data_context=data_context,
    )

