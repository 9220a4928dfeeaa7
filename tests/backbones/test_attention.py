"""`backbone.attn_implementation: packed`: the vision tower's attention in one call per layer,
equal to the reference SDPA path in outputs and gradients, with no host sync per layer."""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from metaembed.backbones import load_backbone
from metaembed.backbones.attention import PACKED, use_packed_vision_attention
from metaembed.benchmarks.host_syncs import counting_host_syncs

# Images of 16x16, 8x12 and 12x20 patches: with 32-px windows of 8-px patches (merge 2), Qwen2.5-VL's
# windowed layers see 16 + 6 + 15 windows of 4 to 16 patches, its full layers 3 images.
GRID = torch.tensor([[1, 16, 16], [1, 8, 12], [1, 12, 20]])


def qwen25_vision(depth: int = 4):
    """A small Qwen2.5-VL vision tower (windowed layers, full attention at 1 and 3), random weights."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLModel

    config = Qwen2_5_VLConfig(
        text_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=256, bos_token_id=0, eos_token_id=0, pad_token_id=0,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": [2, 3, 3]}),
        vision_config=dict(depth=depth, hidden_size=32, out_hidden_size=64, num_heads=2, intermediate_size=64,
                           patch_size=8, spatial_merge_size=2, window_size=32,
                           fullatt_block_indexes=list(range(1, depth, 2))),
    )
    torch.manual_seed(0)
    return Qwen2_5_VLModel._from_config(config, attn_implementation="sdpa").float()


def _pixels(grid: torch.Tensor, model) -> torch.Tensor:
    vision = model.config.vision_config
    width = vision.in_channels * vision.temporal_patch_size * vision.patch_size**2
    return torch.randn(int(grid.prod(-1).sum()), width, generator=torch.Generator().manual_seed(1))


def _run(model, pixels, grid, packed: bool):
    model.config.vision_config._attn_implementation = "sdpa"
    if packed:
        use_packed_vision_attention(model)
    model.zero_grad(set_to_none=True)
    pixels = pixels.clone().requires_grad_()
    out = model.visual(pixels, grid_thw=grid).pooler_output
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    grads = {name: p.grad.clone() for name, p in model.visual.named_parameters()}
    return out.detach(), pixels.grad, grads


def test_packed_vision_attention_equals_the_per_window_reference_in_outputs_and_gradients():
    model = qwen25_vision()
    pixels = _pixels(GRID, model)
    reference, reference_input_grad, reference_grads = _run(model, pixels, GRID, packed=False)
    out, input_grad, grads = _run(model, pixels, GRID, packed=True)
    assert model.config.vision_config._attn_implementation == PACKED
    assert model.config.text_config._attn_implementation == "sdpa"  # the language model is left alone
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(input_grad, reference_input_grad, rtol=1e-4, atol=1e-5)
    for name in reference_grads:
        torch.testing.assert_close(grads[name], reference_grads[name], rtol=1e-4, atol=1e-5, msg=name)


def _attention_calls(model, pixels, grid, packed: bool) -> int:
    with profile(activities=[ProfilerActivity.CPU]) as prof, torch.no_grad():
        model.config.vision_config._attn_implementation = "sdpa"
        if packed:
            use_packed_vision_attention(model)
        model.visual(pixels, grid_thw=grid)
    return sum(event.count for event in prof.key_averages() if event.key == "aten::scaled_dot_product_attention")


@pytest.mark.parametrize("images", [1, 3])
def test_one_attention_call_per_vision_layer_whatever_the_number_of_windows(images):
    depth = 4
    model = qwen25_vision(depth)
    grid = GRID[:images]
    pixels = _pixels(grid, model)
    reference = _attention_calls(model, pixels, grid, packed=False)
    assert _attention_calls(model, pixels, grid, packed=True) == depth
    # The reference: one call per window in windowed layers and per image in full ones.
    assert reference == {1: 2 * 16 + 2 * 1, 3: 2 * 37 + 2 * 3}[images]


def _syncs(depth: int, packed: bool) -> dict:
    model = qwen25_vision(depth)
    if packed:
        use_packed_vision_attention(model)
    pixels = _pixels(GRID, model)
    with counting_host_syncs() as counts, torch.no_grad():
        model.visual(pixels, grid_thw=GRID)
    return counts


def test_no_host_sync_per_vision_layer():
    """A deeper tower syncs no more often: the per-forward ones (sequence-length bookkeeping from
    grid_thw) are all that is left. The reference path splits lengths on the host in every layer."""
    shallow, deep = _syncs(2, packed=True), _syncs(6, packed=True)
    assert deep == shallow, (shallow, deep)
    # sdpa: query, key and value are split on the host in each of the 4 added layers
    assert _syncs(6, packed=False)["tolist"] == _syncs(2, packed=False)["tolist"] + 3 * 4


def test_the_tiny_backbone_loads_with_packed_vision_attention_and_encodes_as_before(backbone_params, images):
    from metaembed.model import MetaEmbed, ModelParams

    encoded = {}
    for implementation in ("sdpa", "packed"):
        params = backbone_params.model_copy(update={"attn_implementation": implementation})
        backbone = load_backbone(params)
        assert backbone.model.config.vision_config._attn_implementation == (PACKED if implementation == "packed" else "sdpa")
        torch.manual_seed(0)
        model = MetaEmbed(backbone, ModelParams(num_query_meta=2, num_candidate_meta=4), params).eval()
        with torch.inference_mode():
            encoded[implementation], _ = model.encode_candidates(texts=["a", None, "b"], images=images)
    torch.testing.assert_close(encoded["packed"], encoded["sdpa"], rtol=1e-5, atol=1e-5)


def test_packed_attention_refuses_unpacked_inputs():
    from metaembed.backbones.attention import packed_attention

    q = torch.zeros(2, 2, 4, 8)
    with pytest.raises(ValueError, match="packed vision sequences"):
        packed_attention(torch.nn.Module(), q, q, q)

