"""Vision-language backbones: a Hugging Face id or local folder, or the offline `tiny` preset.

Only the decoder stack is loaded (no LM head): MetaEmbed reads last-layer hidden states.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from metaembed.backbones.tiny import TinySpec

TINY = "tiny"

# model_type in config.json -> (base model class, processor family). Qwen2.5-VL reuses the
# Qwen2-VL image processor and our image-only processor.
SUPPORTED_FAMILIES: dict[str, str] = {
    "qwen2_vl": "Qwen2VLModel",
    "qwen2_5_vl": "Qwen2_5_VLModel",
}
# The same families with their LM head, for caption pretraining (metaembed.pretraining).
GENERATION_CLASSES: dict[str, str] = {
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
}


class UnsupportedBackboneError(ValueError):
    """The checkpoint's model family has no MetaEmbed adapter here."""


class BackboneParams(BaseModel):
    """params.yaml `backbone:`."""

    model_config = ConfigDict(extra="forbid")

    name_or_path: str = TINY
    trust_remote_code: bool = False
    torch_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    min_pixels: int = Field(1024, gt=0)
    max_pixels: int = Field(12544, gt=0)
    # packed: the vision tower's attention in one call per layer (backbones.attention), SDPA elsewhere.
    attn_implementation: Literal["packed", "sdpa", "eager", "flash_attention_2"] = "sdpa"
    cache_dir: str = ".cache/backbones"
    # Architecture of the offline preset (used only when name_or_path is "tiny").
    tiny: TinySpec = Field(default_factory=TinySpec)


@dataclass
class Backbone:
    model: Any  # a transformers Qwen2VLModel / Qwen2_5_VLModel
    processor: Any  # ImageOnlyQwen2VLProcessor
    family: str
    source: str  # what was asked for: "tiny", a hub id or a folder

    @property
    def hidden_size(self) -> int:
        return self.model.config.text_config.hidden_size


def load_backbone(params: BackboneParams | None = None, with_lm_head: bool = False, **overrides: Any) -> Backbone:
    """Load model and processor; `overrides` replace fields of `params` (e.g. name_or_path=...).

    `with_lm_head` loads the *ForConditionalGeneration class (a base checkpoint gets a new head).
    """
    params = (params or BackboneParams()).model_copy(update=overrides)
    path = _resolve(params)
    family = _family(path, params.trust_remote_code)
    model = _load_model(path, family, params, GENERATION_CLASSES if with_lm_head else SUPPORTED_FAMILIES)
    processor = load_processor(path, params.min_pixels, params.max_pixels, params.trust_remote_code)
    return Backbone(model=model, processor=processor, family=family, source=params.name_or_path)


def load_processor(path: str | Path, min_pixels: int, max_pixels: int, trust_remote_code: bool = False):
    from transformers import AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from metaembed.backbones.processor import ImageOnlyQwen2VLProcessor

    # The PIL image processor is chosen explicitly: the default one needs torchvision.
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(path, min_pixels=min_pixels, max_pixels=max_pixels)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, padding_side="left")
    return ImageOnlyQwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _resolve(params: BackboneParams) -> str:
    if params.name_or_path == TINY:
        from metaembed.backbones.tiny import ensure_tiny

        return str(ensure_tiny(params.cache_dir, params.tiny))
    return params.name_or_path


def _family(path: str, trust_remote_code: bool) -> str:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise UnsupportedBackboneError(
            f"cannot read a model config from {path!r}: {error}. Give a local folder with config.json, "
            f"a Hugging Face id reachable from this machine, or 'tiny' (for the pretrain stage's output folder, "
            f"run `dvc repro pretrain` or `metaembed pretrain` first)."
        ) from error
    if config.model_type not in SUPPORTED_FAMILIES:
        raise UnsupportedBackboneError(
            f"{path!r} is a {config.model_type!r} model; supported families: {', '.join(sorted(SUPPORTED_FAMILIES))}"
        )
    return config.model_type


def _load_model(path: str, family: str, params: BackboneParams, classes: dict[str, str]):
    import torch
    import transformers

    model_class = getattr(transformers, classes[family])
    # A *ForConditionalGeneration checkpoint loads into the base class: its "model." prefix is
    # stripped by from_pretrained and the LM head is left out.
    packed = params.attn_implementation == "packed"
    model = model_class.from_pretrained(
        path,
        dtype=getattr(torch, params.torch_dtype),
        attn_implementation="sdpa" if packed else params.attn_implementation,
        trust_remote_code=params.trust_remote_code,
    )
    if packed:
        from metaembed.backbones.attention import use_packed_vision_attention

        use_packed_vision_attention(model)
    return model
