"""One pretraining run: params.yaml `pretrain:` -> a captioning-pretrained backbone folder.

The base model (the tiny preset or any supported VLM) gets its LM head and learns to write the
captions, labels and answers of the training images; the result is saved with save_pretrained
(safetensors) and its processor, a folder `backbone.name_or_path` can point at. Resumes like
training does; tracked as its own MLflow run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L

from metaembed.backbones import BackboneParams, load_backbone
from metaembed.config import load_root, prepared_dir
from metaembed.pretraining.datamodule import CaptionDataModule
from metaembed.pretraining.module import CaptionModule
from metaembed.pretraining.params import PretrainParams
from metaembed.tracking import (
    TrackingParams,
    lightning_logger,
    plot_loss_curve,
    run_tags,
)
from metaembed.tracking.provenance import CODE_ROOT
from metaembed.training import checkpoints
from metaembed.training.determinism import make_deterministic
from metaembed.training.strategy import precision


@dataclass
class PretrainConfig:
    pretrain: PretrainParams
    backbone: BackboneParams  # dtype, pixel bounds and the tiny preset's spec; name_or_path is replaced by `base`
    tracking: TrackingParams
    prepared: Path
    params_path: Path | None = None  # the file these came from (provenance); None: built in code

    @classmethod
    def from_file(cls, path: str | Path = "params.yaml", overrides: dict | None = None) -> "PretrainConfig":
        root = load_root(path, overrides)
        return cls(pretrain=root.pretrain, backbone=root.backbone, tracking=root.tracking,
                   prepared=prepared_dir(root), params_path=Path(path).resolve())

    def used_params(self) -> dict:
        """The validated values pretraining runs with (backbone.name_or_path is replaced by `base`)."""
        backbone = self.backbone.model_dump(mode="json", exclude={"name_or_path"})
        return {"pretrain": self.pretrain.model_dump(mode="json"), "backbone": backbone}

    def fingerprint(self) -> dict:
        return self.used_params() | {"prepared": str(self.prepared)}


def pretrain(config: PretrainConfig, root: str | Path = ".") -> dict:
    """Pretrain, save the backbone folder, and return the metrics written for DVC."""
    started = time.perf_counter()
    params = config.pretrain
    make_deterministic(params.seed, params.num_threads, params.accelerator)
    backbone = load_backbone(config.backbone, with_lm_head=True, name_or_path=params.base)
    module = CaptionModule(backbone.model.train(), params)
    data = CaptionDataModule(config.prepared, backbone.processor, params)

    resume = checkpoints.resume_point(params.checkpoint_dir, config.fingerprint())
    logger = lightning_logger(config.tracking, run_name="pretrain", tags=provenance(config, root), root=root,
                              run_id=resume.run_id)
    trainer = L.Trainer(
        max_steps=params.max_steps,
        accelerator=params.accelerator,
        devices=1,
        precision=precision(params),
        gradient_clip_val=params.grad_clip,
        val_check_interval=params.val_every_n_steps,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        log_every_n_steps=max(1, min(10, params.max_steps // 4)),
        logger=logger,
        callbacks=[checkpoints.checkpointing(resume.directory, params.checkpoint_every_n_steps)],
        use_distributed_sampler=False,
    )
    logger.log_hyperparams({"pretrain": params.model_dump(mode="json"), "backbone": config.backbone.model_dump(mode="json")})
    checkpoints.remember_run(resume.directory, logger.run_id)
    trainer.fit(module, datamodule=data, ckpt_path=resume.checkpoint, weights_only=True)
    if trainer.global_step % params.val_every_n_steps:
        trainer.validate(module, datamodule=data, verbose=False)  # the final weights' held-out figures
    return _finish(trainer, backbone, logger, params, time.perf_counter() - started)


def provenance(config: PretrainConfig, root: str | Path = ".") -> dict[str, str]:
    """As training's: the params used (from the file given), the data folder read, the code's commit."""
    return run_tags(root, params_path=config.params_path, params=config.used_params(),
                    prepared=Path(config.prepared).resolve(), code_root=CODE_ROOT)


def _finish(trainer, backbone, logger, params: PretrainParams, seconds: float) -> dict:
    output = Path(params.output_dir)
    backbone.model.save_pretrained(output, safe_serialization=True)
    backbone.processor.save_pretrained(output)
    reports = Path(params.report_dir)
    reports.mkdir(parents=True, exist_ok=True)
    metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
    metrics |= {"steps": trainer.global_step, "wall_seconds": round(seconds, 1)}
    logger.experiment.log_metric(logger.run_id, "pretrain/wall_seconds", seconds)
    report = {"mlflow_run_id": logger.run_id, "metrics": metrics, "backbone": str(output)}
    (reports / "metrics.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    plot_loss_curve(logger.run_id, ("pretrain/loss",), path=reports / "loss_curve.png")
    return report
