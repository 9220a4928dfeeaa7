"""One training run: params.yaml -> a saved MetaEmbed, an MLflow run, DVC metrics.

Resumes from the newest complete checkpoint of the same configuration (and continues its MLflow
run); a changed configuration starts afresh. Under DDP every rank runs this, only rank 0 writes.
"""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L

from metaembed.backbones import load_backbone
from metaembed.config import ParamsRoot
from metaembed.model import MetaEmbed
from metaembed.stage_outputs import TrainReport
from metaembed.tracking import plot_loss_curve
from metaembed.training import checkpoints
from metaembed.training.datamodule import PreparedDataModule
from metaembed.training.determinism import make_deterministic
from metaembed.training.module import MetaEmbedModule
from metaembed.training.strategy import precision, strategy

SECTIONS = ("backbone", "model", "loss", "train")


def train(params: ParamsRoot, root: str | Path = ".", callbacks: list | None = None) -> dict:
    """Train, save the model on rank 0, and return the metrics written for DVC.

    `callbacks` (e.g. tuning's pruning) are appended to the Trainer's own.
    """
    started = time.perf_counter()
    settings = params.train
    make_deterministic(settings.seed, settings.num_threads, settings.accelerator)
    backbone = load_backbone(params.backbone)
    model = MetaEmbed(backbone, params.model, params.backbone).train()  # from_pretrained leaves eval mode
    module = MetaEmbedModule(model, settings, params.loss)
    data = PreparedDataModule(params.prepared_dir, backbone.processor, settings)

    used = params.used(*SECTIONS)
    resume, logger = checkpoints.tracked_resume(settings.checkpoint_dir, params, used, "train", root)
    trainer = L.Trainer(
        max_steps=settings.max_steps,
        accelerator=settings.accelerator,
        devices=settings.devices,
        num_nodes=settings.num_nodes,
        strategy=strategy(settings),
        precision=precision(settings),
        # GradCache steps the optimiser itself (manual optimisation) and clips there.
        gradient_clip_val=None if settings.grad_cache_chunk else settings.grad_clip,
        val_check_interval=settings.val_every_n_steps,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        limit_val_batches=settings.val_queries,
        use_distributed_sampler=False,  # batches are sliced per rank by the data module
        log_every_n_steps=max(1, min(10, settings.max_steps // 4)),
        logger=logger or False,
        callbacks=[checkpoints.checkpointing(resume.directory, settings.checkpoint_every_n_steps), *(callbacks or [])],
    )
    if trainer.is_global_zero:
        logger.log_hyperparams(used)
        checkpoints.remember_run(resume.directory, logger.run_id)
    trainer.fit(module, datamodule=data, ckpt_path=resume.checkpoint, weights_only=True)
    if not trainer.is_global_zero:
        return {}
    return _finish(trainer, model, logger, params, time.perf_counter() - started)


def _finish(trainer, model: MetaEmbed, logger, params: ParamsRoot, seconds: float) -> dict:
    model.save_pretrained(params.model_dir)
    checkpoints.mark_complete(params.train.checkpoint_dir)
    metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
    metrics |= {"steps": trainer.global_step, "wall_seconds": round(seconds, 1)}
    logger.experiment.log_metric(logger.run_id, "train/wall_seconds", seconds)
    report = TrainReport(mlflow_run_id=logger.run_id, metrics=dict(sorted(metrics.items())))
    report.write(params.train_report_path)
    plot_loss_curve(logger.run_id, ("train/loss",), path=Path(params.train.report_dir) / "loss_curve.png")
    return report.model_dump()
