"""Things logged to a run after training: figures, dicts, the loss curve. No-ops off rank 0."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from lightning_utilities.core.rank_zero import rank_zero_only
from matplotlib.figure import Figure
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient


def is_rank_zero() -> bool:
    """True on the process that owns the MLflow run (always true without DDP).

    Lightning keeps the global rank on `rank_zero_only.rank` (set from RANK/LOCAL_RANK when
    lightning is imported, updated by the strategy); before that, read the launcher's env. A
    process on a node other than the first (NODE_RANK or torchrun's GROUP_RANK above 0) is never
    rank 0, though Lightning reads it as 0 until the strategy has started.
    """
    if int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", "0"))) > 0:
        return False
    rank = getattr(rank_zero_only, "rank", None)
    if rank is None:
        rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
    return rank == 0


def _require_run(run_id: str | None) -> str:
    if not run_id:
        raise ValueError("run_id is empty: pass the training logger's `run_id` (rank 0 only)")
    return run_id


def log_figure(run_id: str | None, figure_or_path: Figure | str | Path, artifact_path: str) -> None:
    """Log a matplotlib figure or an image file as `artifact_path` (e.g. "plots/loss_curve.png")."""
    if not is_rank_zero():
        return
    run_id = _require_run(run_id)
    client = MlflowClient()
    if isinstance(figure_or_path, Figure):
        client.log_figure(run_id, figure_or_path, artifact_path)
        return
    source = Path(figure_or_path)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such image to log as {artifact_path!r}")
    target = PurePosixPath(artifact_path)
    folder = str(target.parent) if str(target.parent) != "." else None
    if source.name == target.name:
        client.log_artifact(run_id, str(source), folder)
        return
    # log_artifact keeps the local file name; copy under the requested one.
    with tempfile.TemporaryDirectory() as scratch:
        renamed = Path(scratch) / target.name
        shutil.copyfile(source, renamed)
        client.log_artifact(run_id, str(renamed), folder)


def log_dict_artifact(run_id: str | None, content: Mapping[str, Any], name: str) -> None:
    """Log `content` as a JSON artifact (YAML if `name` ends in .yaml/.yml)."""
    if not is_rank_zero():
        return
    MlflowClient().log_dict(_require_run(run_id), dict(content), name)


def plot_loss_curve(
    run_id: str | None,
    metric_keys: Sequence[str] = ("train/loss",),
    *,
    path: str | Path,
    artifact_dir: str = "plots",
) -> Path | None:
    """Plot the metrics' history from MLflow into a PNG at `path` and log it to the run.

    Returns the PNG's path, or None off rank 0 (which has no run).
    """
    if not is_rank_zero():
        return None
    run_id = _require_run(run_id)
    client = MlflowClient()
    histories = {key: _history(client, run_id, key) for key in metric_keys}
    if not any(histories.values()):
        raise ValueError(
            f"run {run_id} has no history for {list(metric_keys)}: check the metric names the "
            "LightningModule logs (and that log_every_n_steps is small enough to log any)"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _draw(histories).savefig(path, dpi=120)
    log_figure(run_id, path, f"{artifact_dir}/{path.name}")
    return path


def _draw(histories: Mapping[str, list[Metric]]) -> Figure:
    # A bare Figure renders PNGs with Agg and leaves pyplot's global backend state alone.
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    for key, history in histories.items():
        axes.plot([m.step for m in history], [m.value for m in history], marker=".", label=key)
    axes.set_xlabel("step")
    axes.set_ylabel("value")
    axes.grid(alpha=0.3)
    axes.legend()
    return figure


def _history(client: MlflowClient, run_id: str, key: str) -> list[Metric]:
    return sorted(client.get_metric_history(run_id, key), key=lambda point: (point.step, point.timestamp))
