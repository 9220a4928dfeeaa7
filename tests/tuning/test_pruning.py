import optuna
import pytest

from metaembed.config import load_root
from metaembed.training.run import train
from metaembed.tuning.pruning import OptunaPruning


@pytest.mark.slow
def test_pruning_reports_mean_val_precision_by_step_and_stops_training(write_params):
    params = load_root(write_params({"train.max_steps": 6}))
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.1))
    trial = study.ask()  # every P@1 is below 1.1, so the first report prunes
    callback = OptunaPruning(trial)
    report = train(params, callbacks=[callback])
    assert callback.pruned_at == 2
    assert report["metrics"]["steps"] == 2  # stopped at the first validation, not at max_steps=6
    metrics = report["metrics"]
    expected = (metrics["val/p_at_1_1x1"] + metrics["val/p_at_1_full"]) / 2
    assert abs(callback.reported[2] - expected) < 1e-6
    assert study.trials[0].intermediate_values == {2: callback.reported[2]}

