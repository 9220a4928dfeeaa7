"""Resumable checkpoints: pick the newest complete one, skip torn ones, never mix configurations.

Lightning writes checkpoints through an fsspec transaction, but a kill, a full disk or a copy
can still leave a file that does not load. Before resuming, each candidate is loaded with
`weights_only=True`; the newest one that loads and holds a training state wins, and every one
skipped is reported. A fingerprint of the run's configuration and of the contents it reads (the
prepared data, a backbone folder) sits beside the checkpoints, so a changed configuration or input
starts afresh instead of resuming someone else's optimiser state; and a run that finished marks its
folder, so the next run (DVC reruns a stage when its code changed) trains anew instead of "resuming"
a finished one and handing back its weights.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from metaembed.tracking.artifacts import is_rank_zero
from metaembed.tracking.datasets import TRAINING
from metaembed.tracking.lightning import TrackedMLFlowLogger, lightning_logger
from metaembed.tracking.provenance import folder_hash, model_fingerprint, stage_tags

if TYPE_CHECKING:
    from metaembed.config import ParamsRoot

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "run_fingerprint.json"
RUN_ID_FILE = "mlflow_run_id"  # the MLflow run the checkpoints belong to: a resume logs onto it
COMPLETE_FILE = "complete"  # written once the final weights are saved
_STEP = re.compile(r"step=(\d+)\.ckpt$")


def checkpoint_filename() -> str:
    """The ModelCheckpoint `filename` pattern that `_STEP` parses back."""
    return "step={step:06d}"


def prepare_dir(directory: str | Path, fingerprint: dict) -> Path:
    """Keep the folder if it belongs to this configuration, else clear it (with a message)."""
    directory = Path(directory)
    marker = directory / FINGERPRINT_FILE
    stale = None
    if (directory / COMPLETE_FILE).is_file():
        stale = "belong to a run that finished"
    elif marker.is_file() and json.loads(marker.read_text()) != fingerprint:
        stale = "belong to another configuration or other inputs"
    if stale:
        log.warning("%s: checkpoints %s; starting afresh", directory, stale)
        print(f"{directory}: checkpoints {stale}; starting afresh")
        shutil.rmtree(directory, ignore_errors=True)  # other ranks may be clearing it too
    directory.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(fingerprint, indent=1, sort_keys=True) + "\n")
    return directory


@dataclass(frozen=True)
class ResumePoint:
    directory: Path  # the checkpoint folder, cleared when it belonged to another configuration
    checkpoint: Path | None  # None: start from step 0
    run_id: str | None  # the MLflow run to continue, when resuming


def resume_point(directory: str | Path, fingerprint: dict) -> ResumePoint:
    """Where a run with this configuration starts: its folder, the checkpoint and MLflow run to continue."""
    directory = prepare_dir(directory, fingerprint)
    checkpoint = find_resumable(directory)
    run_id = None
    if checkpoint is not None:
        print(f"resuming from checkpoint {checkpoint}")
        marker = directory / RUN_ID_FILE
        run_id = marker.read_text().strip() if marker.is_file() else None
    return ResumePoint(directory, checkpoint, run_id)


def tracked_resume(directory: str | Path, params: ParamsRoot, used: Mapping[str, Any], run_name: str,
                   root: str | Path = ".", backbone: str | None = None) -> tuple[ResumePoint, TrackedMLFlowLogger | None]:
    """How a training or pretraining run starts: the resume point of its configuration (the `used`
    values, `ParamsRoot.used`, the prepared data folder and the `backbone` it loads, by content) and
    the logger of its MLflow run,
    the resumed one's when there is one, tagged with what the run is made of (`stage_tags`) and with
    the prepared data folder as its dataset input. Off rank 0 the logger is None."""
    backbone = params.backbone.name_or_path if backbone is None else backbone
    resume = resume_point(directory, {**used, "prepared": str(params.prepared_dir), **input_hashes(params, backbone)})
    if not is_rank_zero():  # only rank 0 logs; opening the store from every node at once races on its tables
        return resume, None
    logger = lightning_logger(params.tracking, run_name=run_name, tags=stage_tags(params, used, root), root=root,
                              run_id=resume.run_id, data_context=TRAINING)
    return resume, logger


def remember_run(directory: Path, run_id: str) -> None:
    (directory / RUN_ID_FILE).write_text(run_id)


def mark_complete(directory: str | Path) -> None:
    """After the final weights are saved: no later run resumes these checkpoints."""
    (Path(directory) / COMPLETE_FILE).write_text("the run finished and saved its weights\n")


def input_hashes(params: ParamsRoot, backbone: str) -> dict[str, str]:
    """The contents a run reads, for its fingerprint: the prepared data, and the backbone when it is a
    local folder (a hub id names fixed weights). Paths alone would let a regenerated dataset or a
    new pretraining resume checkpoints made from the old one."""
    hashes = {"prepared.hash": folder_hash(params.prepared_dir)}
    if Path(backbone).is_dir():
        hashes["backbone.hash"] = model_fingerprint(backbone)
    return hashes


def checkpointing(directory: Path, every_n_steps: int):
    """Keep the two newest step checkpoints, written every `every_n_steps` (resume reads them back)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    return ModelCheckpoint(
        dirpath=directory,
        filename=checkpoint_filename(),
        auto_insert_metric_name=False,
        every_n_train_steps=every_n_steps,
        save_top_k=2,
        monitor="step",
        mode="max",
        save_on_train_epoch_end=False,
    )


def find_resumable(directory: str | Path) -> Path | None:
    """Newest checkpoint that loads completely, or None to start from step 0."""
    candidates = sorted(_steps(Path(directory)).items(), reverse=True)
    for _, path in candidates:
        problem = _problem(path)
        if problem is None:
            return path
        print(f"checkpoint {path} is incomplete ({problem}); falling back to the previous one")
    return None


def _steps(directory: Path) -> dict[int, Path]:
    if not directory.is_dir():
        return {}
    found = {}
    for path in directory.glob("*.ckpt"):
        match = _STEP.search(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def _problem(path: Path) -> str | None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any failure to load means we cannot resume from it
        return f"{type(error).__name__}: {str(error)[:120]}"
    missing = {"state_dict", "global_step", "optimizer_states", "loops"} - set(state)
    return f"missing {sorted(missing)}" if missing else None
