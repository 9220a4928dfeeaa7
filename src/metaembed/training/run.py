"""One training run: params.yaml -> a saved MetaEmbed, an MLflow run, DVC metrics.

Resumes from the newest complete checkpoint of the same configuration (and continues its MLflow
run); a changed configuration starts afresh. Under DDP every rank runs this, only rank 0 writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L

from metaembed.backbones import BackboneParams, load_backbone
from metaembed.config import load_root, prepared_dir
from metaembed.model import MetaEmbed, ModelParams
from metaembed.stage_outputs import TrainReport
from metaembed.tracking import (
    TrackingParams,
    lightning_logger,
    plot_loss_curve,
    run_tags,
)
from metaembed.tracking.provenance import CODE_ROOT
from metaembed.training import checkpoints
from metaembed.training.datamodule import PreparedDataModule
from metaembed.training.determinism import make_deterministic
from metaembed.training.module import MetaEmbedModule
from metaembed.training.params import LossParams, TrainParams
from metaembed.training.strategy import precision, strategy

SECTIONS = ("backbone", "model", "loss", "train")


@dataclass
class TrainConfig:
    backbone: BackboneParams
    model: ModelParams
    loss: LossParams
    train: TrainParams
    tracking: TrackingParams
    prepared: Path
    params_path: Path | None = None  # the file these came from (provenance); None: built in code

    @classmethod
    def from_file(cls, path: str | Path = "params.yaml", overrides: dict | None = None) -> "TrainConfig":
        root = load_root(path, overrides)
        return cls(backbone=root.backbone, model=root.model, loss=root.loss, train=root.train,
                   tracking=root.tracking, prepared=prepared_dir(root), params_path=Path(path).resolve())

    def used_params(self) -> dict:
        """The validated values training runs with, overrides made after loading included."""
        return {name: getattr(self, name).model_dump(mode="json") for name in SECTIONS}

    def fingerprint(self) -> dict:
        return self.used_params() | {"prepared": str(self.prepared)}


def train(config: TrainConfig, root: str | Path = ".", callbacks: list | None = None) -> dict:
    """Train, save the model on rank 0, and return the metrics written for DVC.

    `callbacks` (e.g. tuning's pruning) are appended to the Trainer's own.
    """
    started = time.perf_counter()
    params = config.train
    make_deterministic(params.seed, params.num_threads, params.accelerator)
    backbone = load_backbone(config.backbone)
    model = MetaEmbed(backbone, config.model, config.backbone).train()  # from_pretrained leaves eval mode
    module = MetaEmbedModule(model, params, config.loss)
    data = PreparedDataModule(config.prepared, backbone.processor, params)

    resume = checkpoints.resume_point(params.checkpoint_dir, config.fingerprint())
    logger = lightning_logger(config.tracking, run_name="train", tags=provenance(config, root), root=root,
                              run_id=resume.run_id)
    trainer = L.Trainer(
        max_steps=params.max_steps,
        accelerator=params.accelerator,
        devices=params.devices,
        num_nodes=params.num_nodes,
        strategy=strategy(params),
        precision=precision(params),
        gradient_clip_val=params.grad_clip,
        val_check_interval=params.val_every_n_steps,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        limit_val_batches=params.val_queries,
        use_distributed_sampler=False,  # batches are sliced per rank by the data module
        log_every_n_steps=max(1, min(10, params.max_steps // 4)),
        logger=logger,
        callbacks=[checkpoints.checkpointing(resume.directory, params.checkpoint_every_n_steps), *(callbacks or [])],
    )
    if trainer.is_global_zero:
        logger.log_hyperparams({name: getattr(config, name).model_dump(mode="json") for name in SECTIONS})
        checkpoints.remember_run(resume.directory, logger.run_id)
    trainer.fit(module, datamodule=data, ckpt_path=resume.checkpoint, weights_only=True)
    if not trainer.is_global_zero:
        return {}
    return _finish(trainer, model, logger, config, time.perf_counter() - started, root)


def provenance(config: TrainConfig, root: str | Path = ".") -> dict[str, str]:
    """What this run is made of: the params it uses (from the file it was given), the data folder it
    reads and the commit of the code that runs it; `root` only locates data.dvc."""
    return run_tags(root, params_path=config.params_path, params=config.used_params(),
                    prepared=Path(config.prepared).resolve(), code_root=CODE_ROOT)


def _finish(trainer, model: MetaEmbed, logger, config: TrainConfig, seconds: float, root) -> dict:
    model.save_pretrained(config.train.output_dir)
    reports = Path(config.train.report_dir)
    metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
    metrics |= {"steps": trainer.global_step, "wall_seconds": round(seconds, 1)}
    logger.experiment.log_metric(logger.run_id, "train/wall_seconds", seconds)
    report = TrainReport(mlflow_run_id=logger.run_id, metrics=dict(sorted(metrics.items())))
    report.write(reports / "metrics.json")
    plot_loss_curve(logger.run_id, ("train/loss",), path=reports / "loss_curve.png")
    return report.model_dump()
