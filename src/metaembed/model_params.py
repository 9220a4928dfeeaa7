"""params.yaml `model:` (and its `lora:`), apart from the model code so that validating params
needs no torch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LoraParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    r: int = Field(32, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class ModelParams(BaseModel):
    """params.yaml `model:`."""

    model_config = ConfigDict(extra="forbid")

    num_query_meta: int = Field(16, gt=0)
    num_candidate_meta: int = Field(64, gt=0)
    pooling: Literal["meta", "last", "tokens"] = "meta"
    projection_dim: int | None = Field(None, gt=0)
    # Subtract the mean output per vector slot before L2-normalising: the batch mean in training
    # (each source's own mean when the trainer passes `groups`), at inference the mean that
    # `calibrate_centering` measured with the final weights. Removes
    # the component every input shares, which otherwise dominates a from-scratch model and lets
    # InfoNCE collapse all embeddings onto one point (docs/learnability.md). false = the paper's head.
    centering: bool = False
    gradient_checkpointing: bool = False
    lora: LoraParams = LoraParams()
