"""The `tiny` preset: a ~1M-parameter Qwen2-VL-family backbone built offline.

No model hub is reachable where the default run and the tests execute, so the preset is built
from a config: a byte-level BPE tokenizer trained locally on a fixed corpus (with the Qwen2-VL
special tokens) and randomly initialised weights from a fixed seed. Everything is a pure
function of `TinySpec`, so every machine builds the same model; the folder is cached under a
name derived from the spec and rebuilt when the spec changes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

QWEN2_VL_SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]

# Prompt words and common English; the generator's own words are added from
# metaembed.synth.vocabulary. BPE learns whole-word tokens for them, which keeps sequences short
# on CPU. Other text still encodes (byte-level fallback).
_CORPUS_WORDS = """
query describe the image represent given find a an of in on at to with and or is are which what
where how many who this that it its for from by as be has have not no yes one two three four five
six seven eight nine ten zero left right top bottom middle center upper lower above below next
red green blue yellow orange purple pink brown black white gray grey cyan magenta
circle square triangle star cross diamond hexagon ring heart arrow bar dot
small medium large big tiny huge object objects shape shapes colour color size position word
scene picture photo page document figure table chart text title section caption answer question
retrieve select choose identify classify match label category class region box grounding
page number paragraph line column row cell value total report year price name date
""".split()


@dataclass(frozen=True)
class TinySpec:
    """Architecture of the tiny preset; every field changes the built model."""

    vocab_size: int = 1024
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    mrope_section: tuple[int, int, int] = (4, 6, 6)  # sums to head_dim / 2 = 16
    vision_embed_dim: int = 64
    vision_depth: int = 2
    vision_heads: int = 4
    vision_mlp_ratio: int = 2
    patch_size: int = 8
    merge_size: int = 2
    seed: int = 0

    def fingerprint(self) -> str:
        """Names the cached folder: changes with the spec and with the tokenizer's corpus."""
        payload = json.dumps({"spec": asdict(self), "corpus": _corpus()}, sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:12]


def tiny_dir(cache_dir: str | Path, spec: TinySpec = TinySpec()) -> Path:
    return Path(cache_dir) / f"tiny-qwen2vl-{spec.fingerprint()}"


def ensure_tiny(cache_dir: str | Path, spec: TinySpec = TinySpec()) -> Path:
    """Return the preset's folder, building it first if it is missing or incomplete."""
    target = tiny_dir(cache_dir, spec)
    if (target / "metaembed_tiny.json").is_file():
        return target
    return build_tiny(target, spec)


def build_tiny(target: str | Path, spec: TinySpec = TinySpec()) -> Path:
    """Build the preset into `target` atomically (a crash never leaves a half-written folder)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".building-") as tmp:
        staging = Path(tmp) / "model"
        tokenizer = _train_tokenizer(spec)
        processor = _make_processor(tokenizer, spec)
        model = _make_model(tokenizer, spec)
        model.save_pretrained(staging, safe_serialization=True)
        processor.save_pretrained(staging)
        (staging / "metaembed_tiny.json").write_text(json.dumps(asdict(spec), indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    return target


def _train_tokenizer(spec: TinySpec):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=QWEN2_VL_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        padding_side="left",
        model_max_length=4096,
    )


def _corpus() -> list[str]:
    """Fixed training text for the tokenizer: our word list plus every word the generator writes.

    Repetition weights whole words so they become single tokens; order is fixed for determinism.
    """
    from metaembed.synth.vocabulary import words

    vocabulary = sorted(set(_CORPUS_WORDS) | set(words()))
    corpus = [" ".join(vocabulary)] * 8 + [" ".join(f"{w} {w.capitalize()}" for w in vocabulary)] * 4
    return corpus + [" ".join(str(n) for n in range(100))] * 2


def _make_processor(tokenizer, spec: TinySpec):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from metaembed.backbones.processor import ImageOnlyQwen2VLProcessor

    token_area = (spec.patch_size * spec.merge_size) ** 2
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=spec.patch_size,
        merge_size=spec.merge_size,
        temporal_patch_size=2,
        min_pixels=4 * token_area,
        max_pixels=49 * token_area,
    )
    return ImageOnlyQwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _make_model(tokenizer, spec: TinySpec):
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLModel

    token_id = tokenizer.convert_tokens_to_ids
    pad_id = token_id("<|endoftext|>")
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=spec.hidden_size,
            intermediate_size=spec.intermediate_size,
            num_hidden_layers=spec.num_layers,
            num_attention_heads=spec.num_heads,
            num_key_value_heads=spec.num_kv_heads,
            max_position_embeddings=4096,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": list(spec.mrope_section)},
            bos_token_id=pad_id,
            eos_token_id=pad_id,
            pad_token_id=pad_id,
        ),
        vision_config=dict(
            depth=spec.vision_depth,
            embed_dim=spec.vision_embed_dim,
            hidden_size=spec.hidden_size,  # the merger projects into the text width
            num_heads=spec.vision_heads,
            mlp_ratio=spec.vision_mlp_ratio,
            patch_size=spec.patch_size,
            spatial_merge_size=spec.merge_size,
            temporal_patch_size=2,
        ),
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(spec.seed)
    try:
        return Qwen2VLModel(config)
    finally:
        torch.random.set_rng_state(generator_state)
