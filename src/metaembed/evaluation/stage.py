"""The `evaluate` stage: params.yaml -> quality at every budget, DVC metrics, plots, MLflow.

    <out_dir>/metrics.json          summary per budget and chance levels (DVC metrics)
    <out_dir>/report.json           every subset and set at every budget, counts, timings
                                    (`metaembed.stage_outputs.EvaluateReport`)
    <out_dir>/quality_by_budget.png per subset/set and the mean, against the budget
    <out_dir>/embeddings/           full-size embeddings (safetensors) the sweep re-scores
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from metaembed.config import ParamsRoot
from metaembed.evaluation.suite import Suite
from metaembed.stage_outputs import EvaluateReport, MissingStageOutput, TrainReport
from metaembed.tracking import TrackingParams

EMBEDDINGS_DIR = "embeddings"
# Source files whose change alters embeddings of an unchanged model (prompts, batching).
# Per-set counts and chance levels stay in report.json; as MLflow metrics they would repeat per budget.
_NOT_SCORES = ("chance", "queries", "twin_queries", "unjudged_queries")
_ENCODER_SOURCES = ("model.py", "batching.py", "prompts.py", "backbones/processor.py")


def encoder_fingerprint(model_dir: str | Path) -> str:
    """The saved model plus the code that turns inputs into its embeddings."""
    import metaembed
    from metaembed.tracking.provenance import model_fingerprint

    package = Path(metaembed.__file__).parent
    digest = hashlib.sha256(model_fingerprint(model_dir).encode())
    for name in _ENCODER_SOURCES:
        source = package / name
        if source.is_file():
            digest.update(source.read_bytes())
    return digest.hexdigest()


def run_evaluate(params: ParamsRoot, suite: Suite | None = None, out_dir: str | Path | None = None,
                 progress: bool = True, log_to_mlflow: bool | None = None, metric_prefix: str = "eval",
                 root: str | Path = ".") -> dict:
    """Evaluate the saved model on `suite` (default: the prepared data); returns metrics.json's content."""
    import torch

    from metaembed.evaluation import encode, plots
    from metaembed.evaluation.quality import evaluate_model
    from metaembed.evaluation.suite import load_prepared
    from metaembed.model import MetaEmbed

    settings = params.evaluate
    started = time.perf_counter()
    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    out = Path(out_dir or settings.out_dir)
    log = settings.log_to_mlflow if log_to_mlflow is None else log_to_mlflow
    run_id = training_run_id(params) if log else None  # fail before the long part, not after it
    model_dir = params.model_dir
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: no trained model (train.output_dir); run `metaembed train` first")
    model = MetaEmbed.from_pretrained(model_dir)
    reads_prepared = suite is None  # else folders given on the command line: no DVC-tracked version to name
    suite = suite or load_prepared(params.prepared_dir)
    print(f"evaluating {model_dir} ({model.params.pooling} pooling) on {suite.describe()}")
    fingerprint = encoder_fingerprint(model_dir)
    cache = _load_cache(out / EMBEDDINGS_DIR, fingerprint) if settings.cache_embeddings else None
    report, stores = evaluate_model(model, suite, settings.budgets, settings.recall_at, settings.batch_size, progress,
                                    cache)
    if settings.cache_embeddings:
        encode.save_stores(out / EMBEDDINGS_DIR, stores, {"encoder": fingerprint, "model_dir": str(model_dir),
                                                          "pooling": model.params.pooling, "dim": model.dim})
    report.seconds["total"] = round(time.perf_counter() - started, 2)
    evaluated = EvaluateReport(**report.to_dict(), model_dir=str(model_dir), mlflow_run_id=run_id)
    payload = evaluated.model_dump(mode="json")
    metrics = {"mlflow_run_id": run_id, "budgets": report.summary, "chance": report.chance,
               "seconds": report.seconds}
    evaluated.write(out / "report.json")
    _write_json(out / "metrics.json", metrics)
    figure = plots.save(plots.evaluation_figure(payload), out / "quality_by_budget.png")
    if run_id:
        _log(run_id, params.tracking, payload, figure, metric_prefix, root)
        if reads_prepared:
            _log_data_input(run_id, params, root)
    return metrics


def training_run_id(params: ParamsRoot, stage: str = "evaluate") -> str:
    """The MLflow run of the training that made the model: evaluate and sweep log onto it."""
    try:
        return TrainReport.read(params.train_report_path).mlflow_run_id
    except MissingStageOutput as error:
        raise MissingStageOutput(f"{error}, or set {stage}.log_to_mlflow: false / pass --no-mlflow "
                                 "to skip MLflow") from None


def _load_cache(folder: Path, fingerprint: str):
    from metaembed.evaluation.encode import load_stores

    try:
        stores, meta = load_stores(folder)
    except FileNotFoundError:
        return None
    if meta.get("encoder") != fingerprint:
        print(f"embedding cache in {folder} is from another model or encoder: re-encoding")
        return None
    return stores


def _log(run_id: str, tracking: TrackingParams, payload: dict, figure: Path, prefix: str, root) -> None:
    from metaembed.evaluation.tracked import flatten, log_results

    metrics = flatten(prefix, payload["summary"]) | flatten(f"{prefix}/chance", payload["chance"])
    metrics |= flatten(f"{prefix}/seconds", payload["seconds"])
    for table in ("mmeb", "vidore"):
        for budget, sets in payload[table].items():
            scores = {name: {k: v for k, v in values.items() if not k.startswith(_NOT_SCORES)}
                      for name, values in sets.items()}
            metrics |= flatten(f"{prefix}/{budget}/{table}", scores)
    log_results(run_id, tracking, metrics, {f"{prefix}/report.json": payload},
                {f"{prefix}/plots/{figure.name}": figure}, root)


def _log_data_input(run_id: str, params: ParamsRoot, root) -> None:
    """The prepared folder as the run's evaluation input (already there when the training read the same data)."""
    from mlflow.tracking import MlflowClient

    from metaembed.tracking.datasets import EVALUATION, log_prepared_input
    from metaembed.tracking.provenance import prepared_tags

    log_prepared_input(MlflowClient(), run_id, prepared_tags(params, root), EVALUATION)


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, sort_keys=False) + "\n")
