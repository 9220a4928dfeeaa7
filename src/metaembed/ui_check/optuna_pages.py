"""The optuna-dashboard pages of every tuning study: its history and parameter importances, the Pareto
front of a multi-objective one, and the analytics page's per-parameter plots."""

from __future__ import annotations

from pathlib import Path

from metaembed.ui_check.pages import Missing, PageCheck

PLOT = r'class="main-svg"'  # a drawn plotly figure
MULTI_HINT = "metaembed tune --trials 3 --mode multi --study metaembed-multi"


def study_storages(tune, root: Path) -> list[str]:
    """The journal files under tune.out_dir, and tune.storage when it is an RDB URL."""
    found = sorted(str(path) for path in (root / tune.out_dir).glob("*.journal"))
    url = tune.storage_url(str(root))
    if "://" in url:
        found.append(url)
    elif Path(url).is_file() and url not in found:
        found.append(url)
    if not found:
        raise Missing(f"no Optuna study under {tune.out_dir}: run `metaembed tune --trials 3` (and `{MULTI_HINT}` "
                      "for a Pareto front) first")
    return found


def completed(study) -> list:
    import optuna

    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def best_trials_heading(study) -> str:
    """The dashboard names a lone Pareto-optimal trial by its number and titles several as a list."""
    best = study.best_trials
    return f"Best Trial (number={best[0].number})" if len(best) == 1 else "Best Trials"


def study_pages(url: str, study_id: int, study) -> list[PageCheck]:
    """History and importances (and the Pareto front) on the study's first page; the analytics page."""
    trials = completed(study)
    if len(trials) < 2:
        raise Missing(f"study {study.study_name!r} has {len(trials)} completed trial(s): parameter importances "
                      "need 2; run more trials (`metaembed tune --study ... --trials 2`)")
    names = study.metric_names or [f"Objective {i}" for i in range(len(study.directions))]
    params = sorted(set.intersection(*(set(trial.params) for trial in trials)))
    multi = len(study.directions) > 1
    top = PageCheck(f"optuna-{study.study_name}-{'pareto-front-' if multi else ''}history-importances",
                    f"{url}/dashboard/studies/{study_id}",
                    shows=[study.study_name, "History", "Hyperparameter Importance", *names, *params,
                           *(["Pareto Front", best_trials_heading(study)] if multi else [])],
                    markup=[PLOT, r'class="barlayer', r'class="scatterlayer'], height=2600 if multi else 2000)
    analytics = PageCheck(f"optuna-{study.study_name}-analytics", f"{url}/dashboard/studies/{study_id}/analytics",
                          shows=[study.study_name, "Slice", *names], markup=[PLOT], height=1600)
    return [top, analytics]


def dashboard_pages(url: str, storage) -> tuple[list[PageCheck], bool]:
    """(pages of every study the dashboard lists, whether one of them is multi-objective)."""
    import json
    import urllib.request

    import optuna

    with urllib.request.urlopen(f"{url}/api/studies", timeout=30) as response:
        listed = json.load(response)["study_summaries"]
    pages, multi = [], False
    for summary in listed:  # the dashboard's own ids: the URLs it routes
        study = optuna.load_study(study_name=summary["study_name"], storage=storage)
        pages += study_pages(url, summary["study_id"], study)
        multi |= len(study.directions) > 1
    return pages, multi
