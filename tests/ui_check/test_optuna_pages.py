"""What the optuna-dashboard page must show depends on the study: its Pareto heading."""

from __future__ import annotations

import optuna

from metaembed.ui_check.optuna_pages import best_trials_heading


def _study(points: list[tuple[float, float]]) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "maximize"])
    for values in points:
        study.add_trial(optuna.trial.create_trial(params={}, distributions={}, values=list(values)))
    return study


def test_a_lone_pareto_optimal_trial_is_named_by_its_number_and_several_are_a_list():
    assert best_trials_heading(_study([(0.1, 0.1), (0.3, 0.4), (0.2, 0.2)])) == "Best Trial (number=1)"
    assert best_trials_heading(_study([(0.1, 0.5), (0.5, 0.1), (0.05, 0.05)])) == "Best Trials"
