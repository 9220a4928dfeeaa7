from __future__ import annotations

import json

import pytest
import torch

from metaembed.backbones import SUPPORTED_FAMILIES, BackboneParams, UnsupportedBackboneError, load_backbone


def test_unknown_family_lists_supported_ones(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(UnsupportedBackboneError, match="supported families: qwen2_5_vl, qwen2_vl"):
        load_backbone(name_or_path=str(tmp_path))


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(UnsupportedBackboneError, match="cannot read a model config") as error:
        load_backbone(name_or_path=str(tmp_path / "nowhere"))
    assert "dvc repro pretrain" in str(error.value)  # the default's folder is the pretrain stage's output


def test_with_lm_head_loads_the_generation_class_with_the_same_decoder(tiny_backbone, backbone_params):
    generating = load_backbone(backbone_params, with_lm_head=True)
    assert type(generating.model).__name__ == "Qwen2VLForConditionalGeneration"
    decoder = generating.model.model.state_dict()
    for name, weight in tiny_backbone.model.state_dict().items():
        torch.testing.assert_close(decoder[name], weight, rtol=0, atol=0)


def test_conditional_generation_checkpoint_loads_into_base_model(tiny_backbone, tmp_path):
    """Real checkpoints are *ForConditionalGeneration; the loader keeps the decoder, drops the head."""
    from transformers import Qwen2VLForConditionalGeneration

    full = Qwen2VLForConditionalGeneration(tiny_backbone.model.config)
    full.save_pretrained(tmp_path, safe_serialization=True)
    tiny_backbone.processor.save_pretrained(tmp_path)
    loaded = load_backbone(name_or_path=str(tmp_path))
    expected = full.model.state_dict()
    got = loaded.model.state_dict()
    assert set(got) == set(expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0)


def test_qwen2_5_vl_family_loads_and_encodes(tiny_backbone, tmp_path, images):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from metaembed.model import MetaEmbed

    text = tiny_backbone.model.config.text_config.to_dict()
    vision = {"depth": 1, "hidden_size": 64, "out_hidden_size": text["hidden_size"], "num_heads": 4,
              "intermediate_size": 128, "patch_size": 8, "spatial_merge_size": 2, "fullatt_block_indexes": [0],
              "window_size": 32}
    ids = {key: getattr(tiny_backbone.model.config, key) for key in
           ["image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"]}
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(tmp_path, safe_serialization=True)
    tiny_backbone.processor.save_pretrained(tmp_path)
    backbone = load_backbone(name_or_path=str(tmp_path))
    assert backbone.family == "qwen2_5_vl" and "qwen2_5_vl" in SUPPORTED_FAMILIES
    model = MetaEmbed(backbone)
    with torch.inference_mode():
        embeddings, mask = model.encode_queries(["a red circle", None], [None, images[0]])
    assert embeddings.shape == (2, 16, text["hidden_size"]) and mask.all()
    assert torch.isfinite(embeddings).all()


def test_params_reject_unknown_keys():
    with pytest.raises(ValueError, match="extra"):
        BackboneParams.model_validate({"name_or_pth": "tiny"})
