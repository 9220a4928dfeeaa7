"""One trial: sample a configuration, train it briefly, score it at the budgets.

Each trial gets its own folder (<study dir>/trial_<n>/ with params.yaml, model, train report) and
its training's MLflow run, tagged as a child of the study's parent run from the moment it starts.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import yaml

from metaembed.config import apply_overrides
from metaembed.evaluation.params import Budget, budget_name
from metaembed.evaluation.suite import Suite
from metaembed.tuning import space
from metaembed.tuning.params import TuneParams

OBJECTIVE_NAMES = {"single": ["mean_quality"], "multi": ["quality_smallest", "quality_largest"]}


@dataclass
class TrialContext:
    base: dict  # params.yaml as loaded
    tune: TuneParams
    ladder: space.Ladders
    budgets: list[Budget]
    suite: Suite  # the (sampled) evaluation sets every trial is scored on
    study_dir: Path
    parent_run_id: str
    root: Path = Path(".")
    eval_batch_size: int = 64
    progress: bool = False
    extra_callbacks: list = field(default_factory=list)  # tests: e.g. a callback that counts steps
    worker: int = 0  # `metaembed tune --worker k`: recorded on each trial it runs


def trial_params(ctx: TrialContext, config: dict[str, Any], trial_dir: Path) -> dict:
    """params.yaml of one trial: the base, tune.train overrides, the sampled values, own folders."""
    overrides = {f"train.{key}": value for key, value in ctx.tune.train.items()}
    overrides |= {
        "loss.groups": config["groups"],
        "loss.temperature": config["temperature"],
        "train.lr": config["lr"],
        "train.output_dir": str(trial_dir / "model"),
        "train.report_dir": str(trial_dir / "train"),
        "train.checkpoint_dir": str(trial_dir / "checkpoints"),
    }
    return apply_overrides(ctx.base, overrides)


def objective_values(quality: dict[str, float], budgets: list[Budget], mode: str) -> list[float]:
    """single: mean over budgets; multi: (smallest budget, largest budget) by vectors scored."""
    if mode == "single":
        return [sum(quality.values()) / len(quality)]
    by_cost = sorted(budgets, key=lambda b: (b[0] * b[1], b))
    return [quality[budget_name(by_cost[0])], quality[budget_name(by_cost[-1])]]


class NestInStudyRun(pl.Callback):
    """Make the training's MLflow run a child of the study's run, named and tagged by its trial."""

    def __init__(self, parent_run_id: str, trial, config: dict[str, Any], study_name: str) -> None:
        self.parent_run_id, self.trial, self.config, self.study_name = parent_run_id, trial, config, study_name
        self.run_id: str | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logger = trainer.logger
        if logger is None or not trainer.is_global_zero:
            return
        self.run_id, client = logger.run_id, logger.experiment
        for key, value in {"mlflow.parentRunId": self.parent_run_id, "mlflow.runName": f"trial-{self.trial.number:04d}",
                           "optuna.study": self.study_name, "optuna.trial": str(self.trial.number)}.items():
            client.set_tag(self.run_id, key, value)
        for key, value in {**self.trial.params, "groups": self.config["groups"]}.items():
            client.log_param(self.run_id, f"tune.{key}", value)


def run_trial(trial, ctx: TrialContext) -> list[float]:
    import optuna
    from mlflow.tracking import MlflowClient

    from metaembed.config import load_root
    from metaembed.training.run import train
    from metaembed.tuning.pruning import OptunaPruning

    trial.set_user_attr("worker", ctx.worker)  # which process ran it, when several share the study
    config = space.suggest(trial, ctx.tune.space, ctx.ladder)
    trial.set_user_attr("groups", config["groups"])
    trial_dir = ctx.study_dir / f"trial_{trial.number:04d}"
    trial_dir.mkdir(parents=True, exist_ok=True)
    params_file = trial_dir / "params.yaml"
    params_file.write_text(yaml.safe_dump(trial_params(ctx, config, trial_dir), sort_keys=False))
    trial.set_user_attr("params_file", str(params_file))

    nest = NestInStudyRun(ctx.parent_run_id, trial, config, ctx.tune.study_name)
    pruning = OptunaPruning(trial) if ctx.tune.mode == "single" and ctx.tune.pruning.enabled else None
    callbacks = [nest, *([pruning] if pruning else []), *ctx.extra_callbacks]
    params = load_root(params_file)
    report = train(params, ctx.root, callbacks=callbacks)
    run_id = report["mlflow_run_id"]
    trial.set_user_attr("mlflow_run_id", run_id)
    client = MlflowClient()
    if not ctx.tune.keep_checkpoints:
        shutil.rmtree(trial_dir / "checkpoints", ignore_errors=True)
    if pruning is not None and pruning.pruned:
        client.set_tag(run_id, "optuna.state", "PRUNED")
        raise optuna.TrialPruned(f"pruned at step {pruning.pruned_at} (mean val P@1 {pruning.reported})")

    quality = score_trial(params.model_dir, ctx)
    values = objective_values(quality, ctx.budgets, ctx.tune.mode)
    for name, value in quality.items():
        client.log_metric(run_id, f"tune/{ctx.tune.quality_metric}_{name}", value)
    for name, value in zip(OBJECTIVE_NAMES[ctx.tune.mode], values):
        client.log_metric(run_id, f"tune/{name}", value)
    client.set_tag(run_id, "optuna.state", "COMPLETE")
    trial.set_user_attr("quality", quality)
    return values


def score_trial(model_dir: Path, ctx: TrialContext) -> dict[str, float]:
    """quality_metric at every budget on the sampled suite: budget name -> value."""
    import torch

    from metaembed.evaluation.quality import evaluate_model
    from metaembed.model import MetaEmbed

    model = MetaEmbed.from_pretrained(model_dir)
    with torch.inference_mode():
        report, _ = evaluate_model(model, ctx.suite, ctx.budgets, batch_size=ctx.eval_batch_size,
                                   progress=ctx.progress)
    return {name: float(report.summary[name][ctx.tune.quality_metric]) for name in report.summary}


def sample_suite(suite: Suite, metric: str, queries_per_subset: int | None,
                 candidates_per_query: int | None = None) -> Suite:
    """The sets the metric reads: MMEB subsets cut to their first N queries, each query to the
    positive, its twins and the next negatives up to K candidates. Every trial sees the same sets;
    a smaller K raises chance level for all trials alike, and keeping the twins keeps it hard."""
    if not metric.startswith("mmeb"):
        return Suite(vidore=list(suite.vidore), source=suite.source)
    subsets = [type(s)(s.name, s.meta_task, s.split, [_cut(q, candidates_per_query) for q in
                                                       s.queries[:queries_per_subset or None]])
               for s in suite.mmeb]
    return Suite(mmeb=subsets, source=f"{suite.source} (first {queries_per_subset or 'all'} queries per subset, "
                                      f"K <= {candidates_per_query or 'all'})")


def _cut(query, k: int | None):
    import dataclasses

    if not k or len(query.candidates) <= k:
        return query
    twins = list(query.twin_indices or ())
    keep = [0, *[i for i in twins if i != 0]][:k]
    keep += [i for i in range(1, len(query.candidates)) if i not in keep][: k - len(keep)]
    position = {old: new for new, old in enumerate(keep)}
    return dataclasses.replace(query, candidates=tuple(query.candidates[i] for i in keep),
                               twin_indices=(tuple(position[i] for i in twins if i in position)
                                             if query.twin_indices is not None else None))
