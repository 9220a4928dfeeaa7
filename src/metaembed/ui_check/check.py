"""Start each UI over the project's state, check every page in headless Chromium, keep the screenshots.

    python -m metaembed.ui_check [--params params.yaml] [--out docs/ui] [--only mlflow prefect optuna]

Exits 0 when every page shows what the stores hold, 1 with one line per missing thing or page otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from metaembed.ui_check import servers
from metaembed.ui_check.browser import INSTALL_HINT, find_chromium
from metaembed.ui_check.pages import Missing, PageCheck, PageFailed


@dataclass
class Context:
    root: Path
    params: Path
    out: Path
    chromium: str
    logs: Path  # server logs, outside the screenshots' folder
    serve_script: Path | None = None  # what defines the deployment; default <root>/flows/serve.py

    def section(self, name: str, model):
        from metaembed.config import load_section

        return load_section(name, model, self.params)


@dataclass
class Outcome:
    passed: list[Path]
    failed: list[str]


def run_pages(context: Context, pages: list[PageCheck], outcome: Outcome) -> None:
    """Every page, even after one fails: a reviewer wants the whole list of what is wrong."""
    for page in pages:
        try:
            outcome.passed.append(page.run(context.chromium, context.out, context.logs))
        except (PageFailed, RuntimeError) as error:
            outcome.failed.append(str(error))


def check_mlflow(context: Context, outcome: Outcome) -> None:
    from metaembed.registry.params import RegistryParams
    from metaembed.tracking import TrackingParams
    from metaembed.ui_check.mlflow_pages import mlflow_pages, open_store

    tracking = context.section("tracking", TrackingParams)
    client = open_store(tracking, context.root)
    remote = client.tracking_uri.startswith(("http://", "https://"))  # a team server: its own UI, nothing to start
    port = servers.free_port()
    url = client.tracking_uri.rstrip("/") if remote else f"http://{servers.HOST}:{port}"
    pages = mlflow_pages(client, url, tracking.experiment,
                         context.section("registry", RegistryParams).model_name)  # Missing before a slow start
    command = servers.mlflow_command(tracking, context.root, port)
    server = nullcontext() if remote else servers.serving("mlflow server", command, f"{url}/health",
                                                          context.logs / "mlflow.log")
    with server:
        run_pages(context, pages, outcome)


def check_prefect(context: Context, outcome: Outcome) -> None:
    from metaembed.orchestration.params import PipelineParams
    from metaembed.ui_check.prefect_pages import deployment_page, ensure_deployment, flow_run_pages

    home = context.root / ".prefect"
    if not (home / "prefect.db").is_file():
        raise Missing(f"no Prefect database at {home / 'prefect.db'}: run `make run` first")
    port = servers.free_port()
    url = f"http://{servers.HOST}:{port}"
    command, env = servers.prefect_command(port)
    schedule = context.section("pipeline", PipelineParams).schedule
    with servers.serving("prefect server", command, f"{url}/api/health", context.logs / "prefect.log",
                         env | {"PREFECT_HOME": str(home)}):
        run_pages(context, flow_run_pages(url), outcome)
        serve_script = context.serve_script or context.root / "flows" / "serve.py"
        if ensure_deployment(url, schedule.deployment, serve_script, context.params):
            print(f"registered the deployment {schedule.deployment} (paused, as `make serve` leaves it)")
        run_pages(context, [deployment_page(url, schedule.deployment, schedule.cron)], outcome)


def check_optuna(context: Context, outcome: Outcome) -> None:
    from metaembed.commands.dashboard import study_storage
    from metaembed.tuning.params import TuneParams
    from metaembed.ui_check.optuna_pages import MULTI_HINT, dashboard_pages, study_storages

    multi = False
    for location in study_storages(context.section("tune", TuneParams), context.root):
        port = servers.free_port()
        url = f"http://{servers.HOST}:{port}"
        _, storage = study_storage(context.params, context.root, location)
        with servers.serving("optuna-dashboard", servers.dashboard_command(context.params, port, location),
                             f"{url}/api/studies", context.logs / f"optuna-dashboard-{port}.log"):
            pages, has_multi = dashboard_pages(url, storage)
            run_pages(context, pages, outcome)
        multi |= has_multi
    if not multi:
        raise Missing(f"no multi-objective study, so no Pareto front to check: run `{MULTI_HINT}`")


CHECKS: dict[str, Callable[[Context, Outcome], None]] = {
    "mlflow": check_mlflow, "prefect": check_prefect, "optuna": check_optuna}


def check(context: Context, only: list[str]) -> Outcome:
    outcome = Outcome([], [])
    for name in only:
        try:
            CHECKS[name](context, outcome)
        except (Missing, RuntimeError) as error:
            outcome.failed.append(f"{name}: {error}")
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file, in the project root")
    parser.add_argument("--out", default="docs/ui", help="folder for one PNG per page (default docs/ui)")
    parser.add_argument("--only", nargs="+", choices=list(CHECKS), default=list(CHECKS), help="UIs to check")
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print(f"ui-check: {INSTALL_HINT}", file=sys.stderr)
        return 1
    root = Path.cwd()
    context = Context(root, (root / args.params).resolve(), (root / args.out).resolve(), chromium,
                      root / ".cache" / "ui-check")
    outcome = check(context, args.only)
    for path in outcome.passed:
        print(f"ok  {path.relative_to(root) if path.is_relative_to(root) else path}")
    for failure in outcome.failed:
        print(f"FAIL {failure}", file=sys.stderr)
    print(f"ui-check: {len(outcome.passed)} page(s) passed, {len(outcome.failed)} problem(s)"
          + (f"; server logs in {context.logs}" if outcome.failed else ""))
    return 1 if outcome.failed else 0
