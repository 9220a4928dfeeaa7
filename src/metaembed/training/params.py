"""params.yaml `train:` and `loss:`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class LossParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Defaults are params.yaml's recipe (a key left out means the documented value); paper: 0.03.
    temperature: float = Field(0.09, gt=0)
    # (r_q, r_c, weight) nested groups, the last one the full size.
    groups: list[tuple[int, int, float]] = [(1, 1, 0.5), (2, 4, 0.7), (4, 8, 1.0), (8, 16, 1.4), (16, 64, 2.0)]
    # false trains the full group only: the "MetaEmbed without MMR" baseline.
    mmr: bool = True
    scale_by_query_vectors: bool = True  # paper: false
    # Weight of MetaEmbed.pop_offset_penalty: keeps the sources' mean states together so that the
    # one calibrated inference mean fits every task (needs model.centering; 0 turns it off).
    offset_penalty: float = Field(1.0, ge=0)

    def active_groups(self) -> list[tuple[int, int, float]]:
        return list(self.groups) if self.mmr else [self.groups[-1]]


class LoopParams(BaseModel):
    """What every training loop here shares (retrieval training and caption pretraining): steps,
    AdamW with warm-up then cosine decay (training.schedule), clipping, device and threads."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    max_steps: int = Field(1500, gt=0)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = Field(40, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    grad_clip: float = Field(1.0, gt=0)
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    # "auto": bf16-mixed on GPU, 32-true on CPU.
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"
    num_threads: int | None = Field(None, ge=1)
    num_workers: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _warmup_within_steps(self):
        if self.warmup_steps >= self.max_steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must be smaller than max_steps ({self.max_steps})")
        return self


class TrainParams(LoopParams):
    # The retrieval recipe of params.yaml (LoopParams' defaults are caption pretraining's).
    max_steps: int = Field(300, gt=0)
    lr: float = Field(7e-4, gt=0)
    warmup_steps: int = Field(30, ge=0)
    batch_size: int = Field(32, gt=1)  # global: split evenly over ranks
    sub_batch_size: int | None = Field(8, gt=0)  # rows drawn from one source; None: a rank's share
    # GradCache (training.grad_cache): encode a rank's batch this many rows at a time, so the
    # contrastive batch can outgrow the memory of one forward; None encodes it in one pass.
    grad_cache_chunk: int | None = Field(None, gt=0)
    hard_negatives: bool = True
    devices: int | Literal["auto"] = 1
    num_nodes: int = Field(1, ge=1)
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    fsdp_activation_checkpointing: bool = False
    # model.centering: the last N training batches measure the inference means (before every
    # validation and before saving).
    calibration_batches: int = Field(16, gt=0)
    # Steps in a row after warm-up whose loss sits at chance with near-zero embedding spread before
    # training stops as collapsed (training.module); 0 turns the check off.
    collapse_window: int = Field(20, ge=0)
    val_every_n_steps: int = Field(100, gt=0)
    checkpoint_every_n_steps: int = Field(50, gt=0)
    val_queries: int = Field(96, gt=0)
    val_candidates: int = Field(20, ge=2)
    val_small_budget: tuple[int, int] = (1, 1)
    output_dir: str = "artifacts/model"
    report_dir: str = "artifacts/train"  # metrics.json and loss_curve.png (DVC metrics and plots)
    checkpoint_dir: str = "artifacts/checkpoints"

    @model_validator(mode="after")
    def _grad_cache_without_fsdp(self):
        if self.grad_cache_chunk and self.strategy == "fsdp":
            # FSDP gathers and frees shards around each forward/backward pair of its wrapper, and
            # GradCache backs chunks through the model outside that pairing.
            raise ValueError("grad_cache_chunk works with strategy auto or ddp, not fsdp: set one of them")
        return self
