"""One pretraining run: params.yaml `pretrain:` -> a captioning-pretrained backbone folder.

The base model (the tiny preset or any supported VLM) gets its LM head and learns to write the
captions, labels and answers of the training images; the result is saved with save_pretrained
(safetensors) and its processor, a folder `backbone.name_or_path` can point at. Resumes like
training does; tracked as its own MLflow run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L

from metaembed.backbones import load_backbone
from metaembed.backbones.processor import save_processor
from metaembed.config import ParamsRoot
from metaembed.pretraining.datamodule import CaptionDataModule
from metaembed.pretraining.module import CaptionModule
from metaembed.pretraining.params import PretrainParams
from metaembed.tracking import plot_loss_curve
from metaembed.training import checkpoints
from metaembed.training.determinism import make_deterministic
from metaembed.training.strategy import precision

SECTIONS = ("pretrain", "backbone")
# The base model comes from `pretrain.base`: backbone gives only dtype, pixel bounds and the tiny preset's
# spec, so pointing name_or_path at this stage's output must not change the hash or void the checkpoints.
NOT_USED = {"backbone": {"name_or_path"}}


def pretrain(params: ParamsRoot, root: str | Path = ".") -> dict:
    """Pretrain, save the backbone folder, and return the metrics written for DVC."""
    started = time.perf_counter()
    settings = params.pretrain
    make_deterministic(settings.seed, settings.num_threads, settings.accelerator)
    backbone = load_backbone(params.backbone, with_lm_head=True, name_or_path=settings.base)
    module = CaptionModule(backbone.model.train(), settings)
    data = CaptionDataModule(params.prepared_dir, backbone.processor, settings)

    used = params.used(*SECTIONS, exclude=NOT_USED)
    resume, logger = checkpoints.tracked_resume(settings.checkpoint_dir, params, used, "pretrain", root,
                                                 backbone=settings.base)
    trainer = L.Trainer(
        max_steps=settings.max_steps,
        accelerator=settings.accelerator,
        devices=1,
        precision=precision(settings),
        gradient_clip_val=settings.grad_clip,
        val_check_interval=settings.val_every_n_steps,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        log_every_n_steps=max(1, min(10, settings.max_steps // 4)),
        logger=logger,
        callbacks=[checkpoints.checkpointing(resume.directory, settings.checkpoint_every_n_steps)],
        use_distributed_sampler=False,
    )
    logger.log_hyperparams(params.used(*SECTIONS))  # the sections as the file has them, name_or_path too
    checkpoints.remember_run(resume.directory, logger.run_id)
    trainer.fit(module, datamodule=data, ckpt_path=resume.checkpoint, weights_only=True)
    if trainer.global_step % settings.val_every_n_steps:
        trainer.validate(module, datamodule=data, verbose=False)  # the final weights' held-out figures
    return _finish(trainer, backbone, logger, settings, time.perf_counter() - started)


def _finish(trainer, backbone, logger, params: PretrainParams, seconds: float) -> dict:
    output = Path(params.output_dir)
    backbone.model.save_pretrained(output, safe_serialization=True)
    save_processor(backbone.processor, output)
    checkpoints.mark_complete(params.checkpoint_dir)
    reports = Path(params.report_dir)
    reports.mkdir(parents=True, exist_ok=True)
    metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
    metrics |= {"steps": trainer.global_step, "wall_seconds": round(seconds, 1)}
    logger.experiment.log_metric(logger.run_id, "pretrain/wall_seconds", seconds)
    report = {"mlflow_run_id": logger.run_id, "metrics": metrics, "backbone": str(output)}
    (reports / "metrics.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    plot_loss_curve(logger.run_id, ("pretrain/loss",), path=reports / "loss_curve.png")
    return report
