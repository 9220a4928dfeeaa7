"""Report in-training validation to Optuna and stop weak trials.

optuna-integration's PyTorchLightningPruningCallback (5.0.0) imports fine with lightning 2.6.6,
but it reports at `current_epoch`: our trainings run one long epoch bounded by max_steps and
validate every `val_every_n_steps`, so every report lands on step 0, Optuna ignores all but the
first, and the pruner never sees the curve. It also watches a single key, while the objective
averages budgets, and it prunes by raising inside the Trainer, which marks the MLflow run FAILED.
This callback reports the mean of the `val/p_at_1_*` budgets at `global_step` and, when the pruner
says so, stops the Trainer cleanly; the caller raises `optuna.TrialPruned` after `fit` returns.
"""

from __future__ import annotations

import lightning.pytorch as pl

VAL_PREFIX = "val/p_at_1_"


class OptunaPruning(pl.Callback):
    def __init__(self, trial, prefix: str = VAL_PREFIX) -> None:
        super().__init__()
        self.trial = trial
        self.prefix = prefix
        self.pruned_at: int | None = None
        self.reported: dict[int, float] = {}

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        values = [float(v) for k, v in trainer.callback_metrics.items() if k.startswith(self.prefix)]
        if not values:
            raise KeyError(f"no {self.prefix}* metric after validation: the pruning callback needs the "
                           "module's validation precision (check train.val_every_n_steps)")
        step = trainer.global_step
        value = sum(values) / len(values)
        self.trial.report(value, step=step)
        self.reported[step] = value
        if self.trial.should_prune():
            self.pruned_at = step
            trainer.should_stop = True

    @property
    def pruned(self) -> bool:
        return self.pruned_at is not None
