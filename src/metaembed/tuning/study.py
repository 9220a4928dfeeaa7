"""The study: shared storage, the MLflow parent run, workers, and the closing report.

Storage is a journal file by default (safe for many processes on one machine: Optuna locks the
file for every append) or any RDB URL (heartbeats mark a dead worker's trial FAILED and retry it).
Whichever process creates the study (creation is atomic in both storages) also opens the MLflow
parent run and enqueues params.yaml's own configuration; the others load the study and wait for it.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metaembed.config import ParamsError, ParamsRoot, load_params, section, validate_params
from metaembed.training.module import NonFiniteLossError, TrainingCollapsedError
from metaembed.tuning.params import TuneParams

PARENT_ATTR = "mlflow_parent_run_id"
SOURCE_ATTR = "source"
PARENT_WAIT_S = 120.0


@dataclass
class TuneOptions:
    params_path: str | Path = "params.yaml"
    trials: int = 6  # trials this worker runs
    timeout_s: float | None = None
    worker: int = 0  # offsets the sampler seed so parallel workers explore different points
    tune_overrides: dict[str, Any] = field(default_factory=dict)  # {"storage": url, "mode": "multi", ...}
    root: str | Path = "."
    progress: bool = True
    extra_callbacks: list = field(default_factory=list)


def load_tune(options: TuneOptions) -> tuple[dict, TuneParams]:
    from metaembed.config import apply_overrides

    base = load_params(options.params_path)
    merged = apply_overrides(base, {f"tune.{k}": v for k, v in options.tune_overrides.items() if v is not None})
    return base, section(merged, "tune", TuneParams, options.params_path)


def open_storage(tune: TuneParams, root: str | Path = "."):
    import optuna
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    url = tune.storage_url(str(root))
    if "://" in url:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)  # heartbeats: stable in practice since 2.x
            return RDBStorage(url, heartbeat_interval=tune.heartbeat_interval_s, grace_period=tune.heartbeat_grace_s,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
    Path(url).parent.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return JournalStorage(JournalFileBackend(url))


def directions(tune: TuneParams) -> list[str]:
    return ["maximize"] if tune.mode == "single" else ["maximize", "maximize"]


def open_study(tune: TuneParams, storage, sampler, pruner):
    """(study, created): create it, or load it when another process or an earlier run did."""
    import optuna

    try:
        study = optuna.create_study(storage=storage, study_name=tune.study_name, directions=directions(tune),
                                    sampler=sampler, pruner=pruner)
        _name_objectives(study, tune)
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(storage=storage, study_name=tune.study_name, sampler=sampler, pruner=pruner)
    if len(study.directions) != len(directions(tune)):
        raise ParamsError(f"study {tune.study_name!r} in {tune.storage_url()} has {len(study.directions)} "
                          f"objective(s) but tune.mode is {tune.mode!r}: pick another tune.study_name")
    return study, False


def _name_objectives(study, tune: TuneParams) -> None:
    """optuna-dashboard labels axes and the Pareto front with these instead of "Objective 0"."""
    from optuna.exceptions import ExperimentalWarning

    from metaembed.tuning.objective import OBJECTIVE_NAMES

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        study.set_metric_names(OBJECTIVE_NAMES[tune.mode])


def _parent_run(study, created: bool, tune: TuneParams, tracking, root, provenance: dict[str, str]) -> str:
    from mlflow.tracking import MlflowClient

    from metaembed.tracking import configure
    from metaembed.tracking.redact import redact_uri

    experiment_id = configure(tracking, root)
    if created:
        tags = {"optuna.study": tune.study_name, "optuna.mode": tune.mode} | provenance
        run = MlflowClient().create_run(experiment_id, run_name=f"tune-{tune.study_name}", tags=tags)
        client = MlflowClient()
        client.log_param(run.info.run_id, "tune.storage", redact_uri(tune.storage_url(str(root))))
        for key, value in tune.model_dump(mode="json", exclude={"storage", "study_name"}).items():
            client.log_param(run.info.run_id, f"tune.{key}", value)
        study.set_user_attr(PARENT_ATTR, run.info.run_id)
        return run.info.run_id
    deadline = time.monotonic() + PARENT_WAIT_S
    while (run_id := study.user_attrs.get(PARENT_ATTR)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"study {tune.study_name!r} has no {PARENT_ATTR} after {PARENT_WAIT_S:.0f} s: "
                               "the process that created it died early; delete the study or pick another name")
        time.sleep(1.0)
    return run_id


def _enqueue_current(study, base: dict, tune: TuneParams, ladder) -> dict | None:
    from metaembed.training.params import LossParams, TrainParams
    from metaembed.tuning import space

    loss = section(base, "loss", LossParams)
    lr = section(base, "train", TrainParams).lr
    params = space.encode(loss.groups, loss.temperature, lr, tune.space, ladder)
    if params is not None:
        study.enqueue_trial(params, user_attrs={SOURCE_ATTR: "params.yaml"})
    return params


def _check_trial_train(base: dict, tune: TuneParams, params_path) -> None:
    """tune.train on top of train: must validate (e.g. warmup_steps < max_steps) before trial 0."""
    from metaembed.config import apply_overrides
    from metaembed.training.params import TrainParams

    merged = apply_overrides(base, {f"train.{k}": v for k, v in tune.train.items()})
    section(merged, "train", TrainParams, f"{params_path} (train: with tune.train applied)")


def _provenance(options: TuneOptions, params: ParamsRoot) -> dict[str, str]:
    """The study's base: the file it was started with, its values, the data folder and the code."""
    from metaembed.tracking.provenance import CODE_ROOT, run_tags

    return run_tags(options.root, params_path=options.params_path, params=params.model_dump(mode="json"),
                    prepared=params.prepared_dir, code_root=CODE_ROOT)


def build_context(options: TuneOptions, base: dict, params: ParamsRoot, tune: TuneParams, parent_run_id: str,
                  ladder):
    """`base` is the file as read (trials rewrite it), `params` the same validated."""
    from metaembed.evaluation.suite import Suite, load_prepared
    from metaembed.tuning.objective import TrialContext, sample_suite

    evaluate = params.evaluate
    prepared = Path(options.root) / params.prepared_dir
    suite = (sample_suite(load_prepared(prepared), tune.quality_metric, tune.eval_queries_per_subset,
                          tune.eval_candidates_per_query)
             if options.trials else Suite())  # --trials 0 only reports
    return TrialContext(base=base, tune=tune, ladder=ladder, budgets=list(tune.budgets or evaluate.budgets),
                        suite=suite, study_dir=Path(options.root) / tune.out_dir / tune.study_name,
                        parent_run_id=parent_run_id, root=Path(options.root), eval_batch_size=evaluate.batch_size,
                        progress=options.progress, extra_callbacks=list(options.extra_callbacks),
                        worker=options.worker)


def run_study(options: TuneOptions) -> dict:
    """Run `options.trials` trials in this process on the shared study, then write the report
    (from every trial in the storage, whichever worker ran it). trials=0: the report only."""
    import optuna

    from metaembed.tuning import report, space
    from metaembed.tuning.objective import run_trial

    started = time.perf_counter()
    base, tune = load_tune(options)
    params = validate_params(base, options.params_path)  # `base` stays as read: each trial's file is written from it
    model = params.model
    ladder = space.ladders(tune.space, model.num_query_meta, model.num_candidate_meta)
    space.group_range(tune.space, ladder)  # an empty space fails before anything is created
    _check_trial_train(base, tune, options.params_path)
    seed = None if tune.sampler_seed is None else tune.sampler_seed + options.worker
    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=tune.pruning.startup_trials,
                                          n_warmup_steps=tune.pruning.warmup_steps)
              if tune.mode == "single" and tune.pruning.enabled else optuna.pruners.NopPruner())
    study, created = open_study(tune, open_storage(tune, options.root), sampler, pruner)
    parent = _parent_run(study, created, tune, params.tracking, options.root, _provenance(options, params))
    if created and tune.enqueue_current and _enqueue_current(study, base, tune, ladder) is None:
        print("params.yaml's loss.groups/temperature/train.lr lie outside tune.space: not enqueued as a baseline")
    context = build_context(options, base, params, tune, parent, ladder)
    if options.trials:
        # A trial whose training collapsed or diverged is marked FAIL (with its message); the study goes on.
        study.optimize(lambda trial: run_trial(trial, context), n_trials=options.trials,
                       timeout=options.timeout_s, gc_after_trial=True, show_progress_bar=options.progress,
                       catch=(TrainingCollapsedError, NonFiniteLossError))
    summary = report.write_report(study, tune, ladder, context, options.params_path, os.getpid())
    summary["worker_wall_seconds"] = round(time.perf_counter() - started, 1)
    report.log_report(parent, summary, context.study_dir)
    return summary
