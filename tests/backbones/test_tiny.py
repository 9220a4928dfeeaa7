from __future__ import annotations

import json

from metaembed.backbones.tiny import TinySpec, build_tiny, ensure_tiny, tiny_dir


def test_tiny_preset_is_byte_identical_across_builds(tmp_path):
    first = build_tiny(tmp_path / "a")
    second = build_tiny(tmp_path / "b")
    for name in ["model.safetensors", "tokenizer.json", "config.json"]:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_tiny_preset_size_and_family(tiny_backbone):
    parameters = sum(p.numel() for p in tiny_backbone.model.parameters())
    assert 0.5e6 < parameters < 2e6, parameters
    assert tiny_backbone.family == "qwen2_vl"
    assert tiny_backbone.model.config.vision_config.hidden_size == tiny_backbone.hidden_size


def test_tokenizer_knows_qwen2_vl_special_tokens_and_pads_left(tiny_backbone):
    tokenizer = tiny_backbone.processor.tokenizer
    for token in ["<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|endoftext|>"]:
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id
    assert tokenizer.padding_side == "left"
    # Frequent words are single tokens, which keeps sequences short on CPU.
    assert len(tokenizer(" red circle top left")["input_ids"]) == 4


def test_cache_is_keyed_by_spec_and_reused(tmp_path):
    spec = TinySpec(num_layers=1)
    built = ensure_tiny(tmp_path, spec)
    assert built == tiny_dir(tmp_path, spec) != tiny_dir(tmp_path, TinySpec())
    stamp = (built / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny(tmp_path, spec) == built
    assert (built / "model.safetensors").stat().st_mtime_ns == stamp
    assert json.loads((built / "metaembed_tiny.json").read_text())["num_layers"] == 1


def test_params_set_the_preset_architecture_and_reject_unknown_fields(tmp_path):
    import pytest

    from metaembed.backbones import BackboneParams, load_backbone
    from metaembed.config import ParamsError, section

    params = section({"backbone": {"tiny": {"patch_size": 16}, "cache_dir": str(tmp_path)}}, "backbone", BackboneParams, "p.yaml")
    backbone = load_backbone(params)
    assert backbone.model.config.vision_config.patch_size == 16
    assert backbone.processor.image_processor.patch_size == 16
    with pytest.raises(ParamsError, match="tiny.patchsize"):
        section({"backbone": {"tiny": {"patchsize": 16}}}, "backbone", BackboneParams, "p.yaml")
