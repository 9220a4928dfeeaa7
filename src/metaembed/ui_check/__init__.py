"""`make ui-check`: each UI (MLflow, Prefect, optuna-dashboard) started on 127.0.0.1 over the project's
own state, every page a reviewer opens rendered in headless Chromium, its visible text checked against
the stores, and one screenshot per page written (docs/ui/ by default). See docs/ui.md."""

from metaembed.ui_check.pages import Missing, PageCheck, PageFailed

__all__ = ["Missing", "PageCheck", "PageFailed"]
