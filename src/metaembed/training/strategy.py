"""Lightning strategy and precision from params: one GPU, DDP or FSDP across GPUs and nodes."""

from __future__ import annotations

import torch

from metaembed.training.params import TrainParams


def precision(params: TrainParams) -> str:
    if params.precision != "auto":
        return params.precision
    return "bf16-mixed" if torch.cuda.is_available() and params.accelerator != "cpu" else "32-true"


def strategy(params: TrainParams):
    if params.strategy == "ddp":
        from lightning.pytorch.strategies import DDPStrategy

        # Every trainable parameter takes part in every step (meta rows of both sides, LoRA).
        return DDPStrategy(find_unused_parameters=False)
    if params.strategy == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy

        layers = _decoder_layer_classes()
        return FSDPStrategy(
            auto_wrap_policy=layers,
            activation_checkpointing_policy=layers if params.fsdp_activation_checkpointing else None,
            sharding_strategy="FULL_SHARD",
            use_orig_params=True,  # LoRA: frozen and trainable parameters share wrapped modules
        )
    return "auto"


def _decoder_layer_classes() -> set[type]:
    """Transformer blocks of the supported families: the unit FSDP shards and checkpoints."""
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen25
    from transformers.models.qwen2_vl import modeling_qwen2_vl as qwen2

    return {qwen2.Qwen2VLDecoderLayer, qwen2.Qwen2VLVisionBlock, qwen25.Qwen2_5_VLDecoderLayer, qwen25.Qwen2_5_VLVisionBlock}
