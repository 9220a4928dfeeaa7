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
    root = project.root if hasattr(project, "root") else project
    return Context(root, root / "params.yaml", root / "shots", chromium, root / "logs", REPO / "flows" / "serve.py")


@pytest.mark.slow
def test_every_page_of_the_three_uis_shows_the_pipeline_run_and_the_study(tuned):
    chromium = require_browser()
    outcome = check(context_for(tuned, chromium), ["mlflow", "prefect", "optuna"])

    assert outcome.failed == [], "\n".join(outcome.failed)
    assert {path.stem for path in outcome.passed} == PAGES
    for path in outcome.passed:
        with Image.open(path) as image:
            assert image.width == 2000 and image.height >= 1000
    keep = os.environ.get("METAEMBED_KEEP_SCREENSHOTS")
    for path in outcome.passed if keep else ():
        Path(keep, path.name).write_bytes(path.read_bytes())
