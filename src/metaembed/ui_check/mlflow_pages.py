"""The MLflow pages a reviewer opens after a pipeline run, and what each must show.

Which runs and versions they show is read from the store itself: the newest pipeline (parent) run, the
newest one with stage runs under it, its training run, and the registered model's champion.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from metaembed.ui_check.pages import Missing, PageCheck

# The UI opens on its GenAI view in a fresh browser; this query parameter opens the training view.
TRAINING_VIEW = "?workflowType=machine_learning"
RUN_FIRST = "run `make run` first"
STAGE_TAG = "pipeline.stage."  # metaembed.orchestration.parent.STAGE_TAG


def open_store(tracking, root: Path):
    """A client on the project's store, without creating one (a missing store is Missing)."""
    from mlflow.tracking import MlflowClient

    from metaembed.tracking import resolve_tracking_uri
    from metaembed.tracking.redact import redact_uri

    uri = resolve_tracking_uri(tracking, root)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise Missing(f"no MLflow store at {redact_uri(uri)}: {RUN_FIRST}")
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def pipeline_runs(client, experiment_name: str) -> tuple[str, list]:
    """(experiment id, the FINISHED pipeline runs newest first)."""
    from metaembed.tracking.pipeline_run import FLOW_RUN_TAG

    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise Missing(f"no experiment {experiment_name!r} in the MLflow store: {RUN_FIRST}")
    finished = f"tags.`{FLOW_RUN_TAG}` != '' and attributes.status = 'FINISHED'"
    runs = client.search_runs([experiment.experiment_id], finished, order_by=["attributes.start_time DESC"],
                              max_results=50)
    if not runs:
        raise Missing(f"no finished pipeline run in experiment {experiment_name!r}: {RUN_FIRST}")
    return experiment.experiment_id, runs


def with_stage_runs(client, experiment_id: str, runs: list) -> tuple:
    """(the newest pipeline run with stage runs under it, those runs): a rerun that skipped every stage has none."""
    for run in runs:
        kids = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
        if kids:
            return run, kids
    raise Missing("no pipeline run has stage runs under it (every stage was skipped in each): change a stage's "
                  "input or `dvc repro --force train`, then `make run`")


def mlflow_pages(client, url: str, experiment_name: str, model_name: str) -> list[PageCheck]:
    experiment_id, runs = pipeline_runs(client, experiment_name)
    newest = runs[0]
    experiment_page = f"{url}/#/experiments/{experiment_id}"
    parent, kids = with_stage_runs(client, experiment_id, runs)
    return [runs_list(experiment_page, newest), parent_page(experiment_page, parent, kids),
            metrics_page(client, experiment_page, newest), *model_pages(client, url, model_name)]


def runs_list(experiment_page: str, newest) -> PageCheck:
    return PageCheck("mlflow-experiment-training-runs", f"{experiment_page}/runs{TRAINING_VIEW}",
                     shows=["Runs", newest.info.run_name, "matching runs"])


def parent_page(experiment_page: str, parent, kids: list) -> PageCheck:
    """The pipeline run: its stage runs, each stage's outcome, the gate's decision."""
    tags = parent.data.tags
    stages = {key.removeprefix(STAGE_TAG): value for key, value in tags.items() if key.startswith(STAGE_TAG)}
    # Tag chips cut long values ("skipped (..."); the description's stage table shows them whole.
    page = f"{experiment_page}/runs/{parent.info.run_id}{TRAINING_VIEW}"
    return PageCheck("mlflow-pipeline-run-with-stage-runs", page,
                     shows=[parent.info.run_name, "Child runs", *(kid.info.run_name for kid in kids),
                            *(STAGE_TAG + stage for stage in stages), "stage status",
                            *(f"{stage} {outcome}" for stage, outcome in stages.items()), "pipeline.gate"])


def metrics_page(client, experiment_page: str, pipeline) -> PageCheck:
    """The training run's charts: a section per metric prefix (all but the last part of the key, as the
    UI groups them: `eval/4x8/mmeb/VOC2007/p_at_1` is in `eval/4x8/mmeb/VOC2007`), with its chart count."""
    run_id = pipeline.data.tags.get("pipeline.train_run_id")
    if not run_id:
        raise Missing(f"pipeline run {pipeline.info.run_name!r} names no training run (pipeline.train_run_id): "
                      f"it stopped before registration; {RUN_FIRST}")
    run = client.get_run(run_id)
    keys = [key for key in run.data.metrics if "/" in key and not key.startswith("system/")]
    if not keys:
        raise Missing(f"training run {run_id} logged no metrics")
    sections = Counter(key.rsplit("/", 1)[0] for key in keys)
    return PageCheck("mlflow-training-run-metric-charts",
                     f"{experiment_page}/runs/{run_id}/model-metrics{TRAINING_VIEW}",
                     shows=[run.info.run_name, "Model metrics",
                            *(f"{name} ({count})" for name, count in sections.items())],
                     markup=[r'class="main-svg"'], height=1400)


def model_pages(client, url: str, model_name: str) -> list[PageCheck]:
    """The registered model with both aliases, and the champion's version page with the gate's decision."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(model_name)
    except MlflowException:
        raise Missing(f"no registered model {model_name!r}: {RUN_FIRST}") from None
    aliases = dict(model.aliases)
    for alias in ("challenger", "champion"):
        if alias not in aliases:
            raise Missing(f"registered model {model_name!r} has no @{alias} alias (aliases: {aliases or 'none'}): "
                          "the gate has not promoted a version yet; see `metaembed promote --dry-run`")
    champion = client.get_model_version(model_name, aliases["champion"])
    tags = champion.tags
    decision = [tags[key] for key in ("gate.decision", "gate.budget") if key in tags]
    if not decision:
        raise Missing(f"{model_name} v{champion.version} carries no gate decision: run `metaembed promote`")
    on_champion = [alias for alias, version in aliases.items() if version == champion.version]
    return [
        PageCheck("mlflow-registered-model-aliases", f"{url}/#/models/{model_name}{TRAINING_VIEW}",
                  shows=[model_name, "challenger", "champion", f"Version {champion.version}"]),
        PageCheck("mlflow-champion-version-gate-decision",
                  f"{url}/#/models/{model_name}/versions/{champion.version}{TRAINING_VIEW}",
                  shows=[f"Version {champion.version}", *on_champion, "gate.decision", *decision]),
    ]
