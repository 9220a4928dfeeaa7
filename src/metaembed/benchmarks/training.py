"""`metaembed bench train`: training throughput and encoding rate of a real-size MetaEmbed.

The `qwen2.5-vl-3b` preset builds the published Qwen2.5-VL-3B-Instruct architecture with random
weights (nothing is downloaded; throughput does not depend on the values) and trains it as the
paper does: LoRA r = 32 on the decoder, bf16, gradient checkpointing, 16 query and 64 candidate
meta tokens, the Matryoshka loss over the five default budgets. Each pair is an image query
(an instruction plus an image of about 1,000 visual tokens) against an image candidate of the same
size, the heaviest MMEB/ViDoRe shape. The tokenizer is the offline tiny preset's: only token ids
matter for speed, and the texts are a few tokens either way.

Model FLOPs (for MFU) count what the model needs, not what the hardware ran: per token, 2 x the
parameters it passes through in the forward pass, plus the attention products (4 x layers x
sequence length x width for the decoder, per vision block likewise over its window or the whole
image), times 2 for the backward pass into the activations (the frozen base needs no weight
gradients; LoRA's are negligible). The recomputation that gradient checkpointing adds is left out,
as MFU usually does. The `tiny` preset runs the same code on CPU in seconds (tests).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# Qwen2.5-VL-3B-Instruct's config.json, written out (transformers field names).
QWEN25_VL_3B_TEXT = dict(
    vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
    num_attention_heads=16, num_key_value_heads=2, max_position_embeddings=128000, rms_norm_eps=1e-6,
    tie_word_embeddings=True, hidden_act="silu",
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
)
QWEN25_VL_3B_VISION = dict(
    depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048, patch_size=14,
    spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31],
    hidden_act="silu", in_chans=3,
)
# Dense bf16 peak of the GPUs this runs on (NVIDIA data sheets, SXM parts).
PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}


@dataclass(frozen=True)
class Settings:
    preset: str = "qwen2.5-vl-3b"
    batch: int = 16            # query-candidate pairs per step
    image_px: int = 896        # 896 / 14 = 64 patches a side -> 32 x 32 = 1,024 visual tokens
    steps: int = 10
    warmup: int = 3
    encode_batch: int = 32
    lora_r: int = 32
    attn: str = "packed"       # backbone.attn_implementation of the vision tower: packed or sdpa
    grad_cache_chunk: int | None = None  # GradCache: encode `batch` pairs this many at a time


def build_model(settings: Settings, device: str):
    """A MetaEmbed on the preset's architecture, LoRA and gradient checkpointing on."""
    import torch

    from metaembed.backbones import Backbone, BackboneParams, load_backbone
    from metaembed.model import LoraParams, MetaEmbed, ModelParams

    tiny = load_backbone(BackboneParams(attn_implementation=settings.attn))
    lora = LoraParams(enabled=True, r=settings.lora_r, alpha=settings.lora_r)
    if settings.preset == "tiny":
        params = ModelParams(lora=lora, gradient_checkpointing=True)
        return MetaEmbed(tiny, params).to(device)
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLModel
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    token_id = tiny.processor.tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        text_config=QWEN25_VL_3B_TEXT, vision_config=QWEN25_VL_3B_VISION,
        image_token_id=token_id("<|image_pad|>"), video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"), vision_end_token_id=token_id("<|vision_end|>"),
    )
    with torch.device(device):
        base = Qwen2_5_VLModel._from_config(config, torch_dtype=torch.bfloat16, attn_implementation="sdpa")
    if settings.attn == "packed":
        from metaembed.backbones.attention import use_packed_vision_attention

        use_packed_vision_attention(base)
    processor = tiny.processor
    tokens = (settings.image_px // 28) ** 2 * 28 * 28
    processor.image_processor = Qwen2VLImageProcessorPil(
        patch_size=14, merge_size=2, temporal_patch_size=2, min_pixels=tokens, max_pixels=tokens)
    backbone = Backbone(model=base, processor=processor, family="qwen2_5_vl", source="qwen2.5-vl-3b (random)")
    params = ModelParams(lora=lora, gradient_checkpointing=True)
    return MetaEmbed(backbone, params, BackboneParams(name_or_path="qwen2.5-vl-3b", torch_dtype="bfloat16")).to(device)


def make_inputs(model, settings: Settings, count: int, side: str):
    """`count` prompted inputs of one side: an instruction and a random-noise image each."""
    import numpy as np
    from PIL import Image

    from metaembed.batching import build_batch

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (settings.image_px, settings.image_px, 3), dtype=np.uint8))
              for _ in range(count)]
    text = "Represent the given image for classification" if side == "query" else "Represent the given image."
    return build_batch(model.processor, side, [text] * count, images)


def model_flops(model, batch: dict, num_meta: int) -> float:
    """Forward FLOPs of one side's batch (see the module docstring)."""
    base = model._base()
    text, vision = base.config.text_config, base.config.vision_config
    decoder = sum(p.numel() for n, p in base.language_model.named_parameters() if "embed_tokens" not in n)
    visual = sum(p.numel() for p in base.visual.parameters())
    rows, length = batch["input_ids"].shape
    positions = rows * (length + num_meta)
    flops = 2 * decoder * positions + 4 * text.num_hidden_layers * positions * (length + num_meta) * text.hidden_size
    if batch.get("image_grid_thw") is not None:
        patches = int(batch["image_grid_thw"].prod(dim=-1).sum())
        per_image = int(batch["image_grid_thw"][0].prod())
        window = getattr(vision, "window_size", 0) // vision.patch_size
        full = set(getattr(vision, "fullatt_block_indexes", None) or range(vision.depth))
        spans = [per_image if i in full else min(per_image, window * window or per_image) for i in range(vision.depth)]
        flops += 2 * visual * patches + sum(4 * patches * span * vision.hidden_size for span in spans)
    return float(flops)


def run_benchmark(settings: Settings, device: str) -> dict:
    import torch

    torch.manual_seed(0)
    started = time.perf_counter()
    model = build_model(settings, device).train()
    _say(f"model built in {time.perf_counter() - started:.0f} s")
    rows = settings.grad_cache_chunk or settings.batch
    queries = _to(make_inputs(model, settings, rows, "query"), device)
    candidates = _to(make_inputs(model, settings, rows, "candidate"), device)
    _say(f"inputs ready ({tuple(queries['input_ids'].shape)} query ids) at {time.perf_counter() - started:.0f} s")
    step = _training_step(model, settings, queries, candidates, device)
    train_s, losses = _timed(step, settings.warmup, settings.steps, device)
    _say(f"training: {train_s:.2f} s per step")
    chunks = settings.batch // rows
    step_flops = 2 * chunks * (model_flops(model, queries, model.params.num_query_meta)
                               + model_flops(model, candidates, model.params.num_candidate_meta))  # forward + backward
    positions = chunks * sum(b["input_ids"].numel() + b["input_ids"].shape[0] * meta for b, meta in
                             ((queries, model.params.num_query_meta), (candidates, model.params.num_candidate_meta)))
    report = {
        "settings": asdict(settings), "device": _device_name(device), "torch": torch.__version__,
        "trainable_parameters": sum(model.trainable_parameters().values()),
        "total_parameters": sum(p.numel() for p in model.parameters()),
        "visual_tokens_per_image": int(queries["image_grid_thw"][0].prod()) // 4,
        "positions_per_step": positions,
        "train_seconds_per_step": train_s,
        "samples_per_second": settings.batch / train_s,
        "tokens_per_second": positions / train_s,
        "model_tflops_per_step": step_flops / 1e12,
        "achieved_tflops": step_flops / train_s / 1e12,
        "losses": losses,
    }
    peak = _peak_tflops(report["device"])
    report["peak_bf16_tflops"] = peak
    report["mfu"] = report["achieved_tflops"] / peak if peak else None
    if device == "cuda":
        report["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    report["host_syncs_per_step"] = _host_syncs(step)
    report["profile"] = _profile(step, device)
    report["encode_per_second"] = _encode_rates(model, settings, device)
    return report


def _training_step(model, settings: Settings, queries: dict, candidates: dict, device: str):
    """One optimiser step over `settings.batch` pairs: in one pass, or with GradCache in chunks (the
    same inputs repeated: throughput does not depend on the values)."""
    import torch

    from metaembed.losses import MatryoshkaMultiVectorLoss
    from metaembed.training.grad_cache import grad_cache_backward

    loss_fn = MatryoshkaMultiVectorLoss(num_query_vectors=model.num_vectors("query"),
                                        num_candidate_vectors=model.num_vectors("candidate"), temperature=0.03)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                                  fused=device == "cuda")
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda")
    chunks = settings.batch // (settings.grad_cache_chunk or settings.batch)
    sides = {"query": ("query", [queries] * chunks), "candidate": ("candidate", [candidates] * chunks)}

    def objective(states) -> torch.Tensor:
        q, qm = model.head("query", *states["query"])
        c, cm = model.head("candidate", *states["candidate"])
        return loss_fn(q, c, None, qm, cm).loss

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            if settings.grad_cache_chunk:
                loss = grad_cache_backward(model, sides, objective)
            else:
                loss = objective({name: model.states(role, **inputs[0]) for name, (role, inputs) in sides.items()})
                loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def _host_syncs(step) -> dict:
    from metaembed.benchmarks.host_syncs import counting_host_syncs

    with counting_host_syncs() as counts:
        step()
    return dict(counts)


def _profile(step, device: str, top: int = 15) -> list[dict]:
    """Where one step's time goes: the ops with the most self time on the device (CPU without one)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        if device == "cuda":
            import torch

            torch.cuda.synchronize()
    events = prof.key_averages()
    attribute = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
    total = sum(getattr(event, attribute) for event in events) or 1
    ranked = sorted(events, key=lambda event: getattr(event, attribute), reverse=True)[:top]
    return [{"op": event.key, "calls": event.count, "self_ms": getattr(event, attribute) / 1e3,
             "share": getattr(event, attribute) / total} for event in ranked]


def _encode_rates(model, settings: Settings, device: str) -> dict:
    import torch

    model.eval()
    rates = {}
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda")
    for side in ("query", "candidate"):
        batch = _to(make_inputs(model, settings, settings.encode_batch, side), device)

        def encode() -> float:
            with torch.inference_mode(), autocast:
                model(side, **batch)
            return 0.0

        seconds, _ = _timed(encode, 1, max(2, settings.steps // 2), device)
        rates[side] = settings.encode_batch / seconds
    model.train()
    return rates


def _timed(function, warmup: int, repeats: int, device: str) -> tuple[float, list[float]]:
    import torch
    from tqdm import tqdm

    values = []
    for index in range(warmup):
        started = time.perf_counter()
        values.append(function())
        _say(f"warm-up {index}: {time.perf_counter() - started:.1f} s")
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in tqdm(range(repeats), desc="timed", leave=False):
        values.append(function())
    if device == "cuda":
        torch.cuda.synchronize()
    # Losses are read after the clock stops: reading each one would sync every step.
    return (time.perf_counter() - start) / repeats, [float(value) for value in values]


def _say(message: str) -> None:
    print(message, flush=True)


def _to(batch: dict, device: str) -> dict:
    return {key: value.to(device) if hasattr(value, "to") else value for key, value in batch.items()}


def _device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name() if device == "cuda" else f"cpu ({platform.processor() or platform.machine()})"


def _peak_tflops(name: str) -> float | None:
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


# ---- CLI --------------------------------------------------------------------------------------

def configure(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    parser.add_argument("--preset", choices=["qwen2.5-vl-3b", "tiny"], default=defaults.preset)
    parser.add_argument("--batch", type=int, default=defaults.batch, help="query-candidate pairs per step")
    parser.add_argument("--image-px", type=int, default=defaults.image_px, help="square image side in pixels")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument("--encode-batch", type=int, default=defaults.encode_batch)
    parser.add_argument("--attn", choices=["packed", "sdpa"], default=defaults.attn,
                        help="vision attention: packed (one call per layer) or sdpa (one per window)")
    parser.add_argument("--grad-cache-chunk", type=int, default=None,
                        help="GradCache: encode the batch this many pairs at a time (batch must be a multiple)")
    parser.add_argument("--out", default="artifacts/bench/train.json", help="JSON report path")


def run(args: argparse.Namespace) -> int:
    import torch

    settings = Settings(preset=args.preset, batch=args.batch, image_px=args.image_px, steps=args.steps,
                        warmup=args.warmup, encode_batch=args.encode_batch, attn=args.attn,
                        grad_cache_chunk=args.grad_cache_chunk)
    if settings.grad_cache_chunk and settings.batch % settings.grad_cache_chunk:
        raise SystemExit(f"--batch {settings.batch} must be a multiple of --grad-cache-chunk {settings.grad_cache_chunk}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if settings.preset != "tiny" and device != "cuda":
        raise SystemExit("the qwen2.5-vl-3b preset needs a CUDA GPU; use --preset tiny on CPU")
    report = run_benchmark(settings, device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    for key in ("device", "visual_tokens_per_image", "positions_per_step", "samples_per_second", "tokens_per_second",
                "achieved_tflops", "mfu", "peak_memory_gib", "host_syncs_per_step", "encode_per_second"):
        print(f"{key:>24}: {report.get(key)}")
    print(f"wrote {out}")
    return 0
