"""params.yaml `pretrain:`."""

from __future__ import annotations

from pydantic import Field

from metaembed.training.params import LoopParams


class PretrainParams(LoopParams):
    # What is pretrained: "tiny" (the offline preset, built from backbone.tiny) or a folder / hub id.
    base: str = "tiny"
    # Training sources left out of pretraining (ablations), e.g. [colpali_train_set].
    exclude_sources: list[str] = []
    batch_size: int = Field(32, gt=0)
    heldout_captions: int = Field(256, gt=0)  # kept out of training; validation loss and accuracy
    val_every_n_steps: int = Field(200, gt=0)
    checkpoint_every_n_steps: int = Field(100, gt=0)
    output_dir: str = "artifacts/backbone"
    report_dir: str = "artifacts/pretrain"
    checkpoint_dir: str = "artifacts/checkpoints/pretrain"
