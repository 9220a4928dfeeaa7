"""`make ui-check` on a project after a short pipeline run and a short multi-objective study: every page
of MLflow, Prefect and optuna-dashboard rendered in headless Chromium shows what the stores hold."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from metaembed.ui_check.browser import find_chromium
from metaembed.ui_check.check import Context, check, main

REPO = Path(__file__).resolve().parents[2]
PAGES = {
    "mlflow-experiment-training-runs", "mlflow-pipeline-run-with-stage-runs", "mlflow-training-run-metric-charts",
    "mlflow-registered-model-aliases", "mlflow-champion-version-gate-decision",
    "prefect-flow-run-tasks-and-stage-outcomes", "prefect-pipeline-summary-artifact",
    "prefect-deployment-test-nightly-schedule",
    "optuna-ui-multi-pareto-front-history-importances", "optuna-ui-multi-analytics",
}


def require_browser() -> str:
    """The browser, or a skip (a failure in CI, which must check the pages in a real browser)."""
    chromium = find_chromium()
    if chromium is None:
        reason = "no headless Chromium here (apt-get install chromium; `make test` installs it as root)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must check the UI pages in a real browser")
        pytest.skip(reason)
    return chromium


def context_for(project, chromium: str = "chromium") -> Context:
    root = project if isinstance(project, Path) else project.root
    return Context(root, root / "params.yaml", root / "shots", chromium, root / "logs", REPO / "flows" / "serve.py")


@pytest.mark.slow
def test_every_page_of_the_three_uis_shows_the_pipeline_run_and_the_study(tuned, capsys):
    chromium = require_browser()
    outcome = check(context_for(tuned, chromium), ["mlflow", "prefect", "optuna"])

    assert outcome.failed == [], "\n".join(outcome.failed)
    # `make run` made no deployment: the check registered the one flows/serve.py defines, paused.
    assert "registered the deployment test-nightly (paused" in capsys.readouterr().out
    assert {path.stem for path in outcome.passed} == PAGES
    for path in outcome.passed:
        with Image.open(path) as image:
            assert image.width == 2000 and image.height >= 1000
    keep = os.environ.get("METAEMBED_KEEP_SCREENSHOTS")
    for path in outcome.passed if keep else ():
        Path(keep, path.name).write_bytes(path.read_bytes())

    # What the pages are checked against comes from the stores: without a champion the check says so.
    tuned.client().delete_registered_model_alias(tuned.model_name, "champion")
    [failure] = check(context_for(tuned, chromium), ["mlflow"]).failed
    assert f"registered model {tuned.model_name!r} has no @champion alias" in failure


def test_a_project_before_its_first_run_fails_naming_what_is_missing_and_the_command(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    outcome = check(context_for(tmp_path), ["mlflow", "prefect", "optuna"])

    assert outcome.passed == []
    assert outcome.failed == [
        f"mlflow: no MLflow store at sqlite:///{tmp_path}/mlflow.db: run `make run` first",
        f"prefect: no Prefect database at {tmp_path}/.prefect/prefect.db: run `make run` first",
        "optuna: no Optuna study under artifacts/tune: run `metaembed tune --trials 3` (and `metaembed tune "
        "--trials 3 --mode multi --study metaembed-multi` for a Pareto front) first",
    ]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "artifacts").exists(), "checking created state"


def test_without_a_browser_the_command_fails_and_says_how_to_get_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("metaembed.ui_check.check.find_chromium", lambda: None)
    monkeypatch.chdir(tmp_path)
    assert main(["--only", "mlflow"]) == 1
    assert "no headless Chromium found: `make browser`" in capsys.readouterr().err
