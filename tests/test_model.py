from __future__ import annotations

import pytest
import torch

from metaembed.batching import build_batch
from metaembed.model import MetaEmbed

TEXTS = ["a red circle top left", None, "what is in the middle?"]


def _encode(model, side, images, **kwargs):
    with torch.inference_mode():
        return model.encode(side, TEXTS, [None, images[0], images[1]], **kwargs)


def test_meta_shapes_unit_norms_and_masks(make_model, images):
    model = make_model()
    queries, query_mask = _encode(model, "query", images)
    candidates, candidate_mask = _encode(model, "candidate", images)
    assert queries.shape == (3, 16, 128) and candidates.shape == (3, 64, 128)
    assert query_mask.all() and candidate_mask.all() and query_mask.dtype == torch.bool
    torch.testing.assert_close(queries.norm(dim=-1), torch.ones(3, 16))
    torch.testing.assert_close(candidates.norm(dim=-1), torch.ones(3, 64))
    # Query and candidate meta tokens are different rows of the table: different vectors.
    assert not torch.allclose(queries[:, 0], candidates[:, 0])


def test_embeddings_do_not_depend_on_batch_company(make_model, images):
    model = make_model()
    together, _ = _encode(model, "candidate", images)
    with torch.inference_mode():
        alone, _ = model.encode_candidates([TEXTS[2]], [images[1]])
    torch.testing.assert_close(alone[0], together[2], atol=1e-5, rtol=1e-5)


def test_budget_prefix_equals_slicing_the_full_embedding(make_model, images):
    model = make_model()
    full_q, _ = _encode(model, "query", images)
    full_c, _ = _encode(model, "candidate", images)
    for r_q, r_c in [(1, 1), (2, 4), (8, 16)]:
        prefix_q, _ = _encode(model, "query", images, budget=r_q)
        prefix_c, _ = _encode(model, "candidate", images, budget=r_c)
        torch.testing.assert_close(prefix_q, full_q[:, :r_q], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(prefix_c, full_c[:, :r_c], atol=1e-5, rtol=1e-5)


def test_budget_outside_range_is_refused(make_model):
    model = make_model(num_query_meta=4, num_candidate_meta=8)
    with pytest.raises(ValueError, match=r"query budget 5 is outside 1..4"):
        model.encode_queries(["x"], budget=5)
    with pytest.raises(ValueError, match=r"candidate budget 0 is outside 1..8"):
        model.encode_candidates(["x"], budget=0)


def test_last_and_tokens_pooling(make_model, images):
    last = make_model(pooling="last")
    vectors, mask = _encode(last, "candidate", images)
    assert vectors.shape == (3, 1, 128) and mask.all()
    tokens = make_model(pooling="tokens")
    vectors, mask = _encode(tokens, "candidate", images)
    lengths = mask.sum(dim=1)
    assert vectors.shape[1] == int(lengths.max()) and len(set(lengths.tolist())) > 1
    assert (vectors[~mask] == 0).all()
    torch.testing.assert_close(vectors[mask].norm(dim=-1), torch.ones(int(mask.sum())))
    with pytest.raises(ValueError, match="meta pooling only"):
        tokens.encode_queries(["x"], budget=1)


def test_projection_sets_the_dimension(make_model):
    model = make_model(projection_dim=32)
    with torch.inference_mode():
        vectors, _ = model.encode_queries(["x"])
    assert vectors.shape == (1, 16, 32) and model.dim == 32


def _perturb(model):
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))


@pytest.mark.parametrize("lora", [False, True])
def test_save_and_load_give_identical_embeddings(make_model, images, tmp_path, lora):
    model = make_model(projection_dim=64, lora={"enabled": lora, "r": 4, "alpha": 8})
    _perturb(model)  # LoRA B starts at zero: without this, a lost adapter would go unnoticed
    model.eval()  # no LoRA dropout
    model.save_pretrained(tmp_path)
    assert not list(tmp_path.rglob("*.bin")) and not list(tmp_path.rglob("*.pt"))
    assert (tmp_path / ("adapter" if lora else "backbone")).is_dir()
    reloaded = MetaEmbed.from_pretrained(tmp_path)
    for side in ["query", "candidate"]:
        before, _ = _encode(model, side, images)
        after, _ = _encode(reloaded, side, images)
        torch.testing.assert_close(after, before, rtol=0, atol=1e-6)


def test_gradients_reach_meta_table_and_lora_with_base_frozen(make_model, images):
    model = make_model(lora={"enabled": True, "r": 4, "alpha": 8}, gradient_checkpointing=True)
    model.train()
    trainable = model.trainable_parameters()
    assert "meta.weight" in trainable
    assert all("lora_" in name for name in trainable if name != "meta.weight")
    queries, _ = model.encode_queries(["a red circle"], [images[0]])
    candidates, _ = model.encode_candidates(["a red circle"], [None])
    (queries.sum() + candidates.sum()).backward()
    assert model.meta.weight.grad is not None and model.meta.weight.grad.abs().sum() > 0
    lora_grads = [p.grad for name, p in model.named_parameters() if "lora_A" in name]
    assert lora_grads and all(g is not None for g in lora_grads)
    frozen = [p for name, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(p.grad is None for p in frozen)


def test_full_training_without_lora_updates_backbone(make_model):
    model = make_model()
    queries, _ = model.encode_queries(["a red circle"])
    queries.sum().backward()
    embed = model._base().get_input_embeddings().weight
    assert embed.requires_grad and embed.grad is not None and embed.grad.abs().sum() > 0


def test_from_pretrained_on_a_wrong_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder written by MetaEmbed.save_pretrained"):
        MetaEmbed.from_pretrained(tmp_path)


def test_centering_subtracts_the_batch_mean_in_training_with_gradient(make_model):
    model = make_model(centering=True, projection_dim=None).train()
    texts = ["a red circle", "a blue square", "two green rings", "a cup"]
    model.params.centering = False
    raw, _ = model.encode_queries(texts)
    model.params.centering = True
    centred, _ = model.encode_queries(texts)
    def mean_cosine(vectors):  # between different inputs, first vector slot
        return (vectors[:, 0] @ vectors[:, 0].T).fill_diagonal_(0).sum().item() / 12

    # Every input shares most of its raw state; centring leaves only what tells inputs apart.
    assert mean_cosine(raw.detach()) > 0.9
    assert mean_cosine(centred.detach()) < 0.5
    centred.sum().backward()  # the mean has gradient: the loss cannot grow the shared part
    assert model.meta.weight.grad is not None and model.meta.weight.grad.abs().sum() > 0


def test_a_projection_after_centering_keeps_the_batch_centred(make_model):
    """A bias would add one shared vector back after centring: the collapse centring prevents
    (a projection_dim 16 run ended at chance loss with a biased projection)."""
    assert make_model(centering=False, projection_dim=8).projection.bias is not None
    model = make_model(centering=True, projection_dim=8).train()
    assert model.projection.bias is None
    vectors, _ = model.encode_queries(["a red circle", "a blue square", "two green rings", "a cup"])
    first = vectors[:, 0].detach()
    torch.testing.assert_close(first.sum(0) / first.norm(dim=-1).sum(), torch.zeros(8), atol=0.2, rtol=0)
    assert (first @ first.T).fill_diagonal_(0).sum().item() / 12 < 0.5


def test_inference_uses_the_calibrated_means_and_refuses_without_them(make_model, tmp_path):
    model = make_model(centering=True, projection_dim=None).eval()
    texts = ["a red circle", "a blue square", "two green rings", "a cup"]
    with pytest.raises(RuntimeError, match="calibrate_centering"), torch.inference_mode():
        model.encode_queries(texts)
    batches = [(side, build_batch(model.processor, side, texts, [None] * 4)) for side in ("query", "candidate")]
    model.train()
    model.calibrate_centering(batches)
    assert model.training and model.center_updates.tolist() == [4, 4]
    model.train()
    with torch.no_grad():
        in_training, _ = model.encode_queries(texts)
    model.eval()
    with torch.inference_mode():
        full, _ = model.encode_queries(texts)
        prefix, _ = model.encode_queries(texts, budget=2)
    # Calibrated on this very batch, the inference means equal the training batch mean.
    torch.testing.assert_close(full, in_training, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(prefix, full[:, :2], atol=1e-5, rtol=1e-5)
    model.save_pretrained(tmp_path)
    reloaded = MetaEmbed.from_pretrained(tmp_path)
    torch.testing.assert_close(reloaded.center_query, model.center_query)
    with torch.inference_mode():
        again, _ = reloaded.encode_queries(texts)
    torch.testing.assert_close(again, full, atol=1e-6, rtol=0)


def test_centering_needs_a_fixed_number_of_vectors(make_model):
    with pytest.raises(ValueError, match="centering needs a fixed number of vectors"):
        make_model(centering=True, pooling="tokens")


def test_grouped_centering_removes_each_groups_mean_and_penalises_their_offsets(make_model):
    model = make_model(centering=True, projection_dim=None).train()
    texts = ["a red circle", "a blue square", "two green rings", "a cup"]
    batch = build_batch(model.processor, "query", texts, [None] * 4)
    groups = torch.tensor([0, 0, 1, 1])
    model.params.centering = False
    raw, _ = model("query", **batch)
    model.params.centering = True
    model("query", **batch, groups=groups)
    assert len(model._group_means["query"]) == 2
    penalty = model.pop_offset_penalty()
    # Nothing recorded until the next grouped forward: the penalty is per step.
    assert model._group_means["query"] == [] and model.pop_offset_penalty().item() == 0.0
    assert penalty.item() > 0 and penalty.requires_grad
    penalty.backward()
    assert model.meta.weight.grad is not None and model.meta.weight.grad.abs().sum() > 0

    # Within a group the result is the group's own centring, whatever the other group holds.
    with torch.no_grad():
        both, _ = model("query", **batch, groups=groups)
        alone, _ = model("query", **build_batch(model.processor, "query", texts[:2], [None] * 2))
    model.pop_offset_penalty()
    torch.testing.assert_close(both[:2], alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(raw[:2], alone, atol=1e-3)


# ---- what a model folder may and may not do -----------------------------------------------


def _plant_remote_code(folder, marker):
    """A saved folder whose configs ask for remote code: an auto_map to a .py that leaves `marker`."""
    import json

    (folder / "backbone" / "planted.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import Qwen2VLConfig\n\n\n"
        "class PlantedConfig(Qwen2VLConfig):\n    pass\n"
    )
    backbone_config = folder / "backbone" / "config.json"
    settings = json.loads(backbone_config.read_text())
    settings["auto_map"] = {"AutoConfig": "planted.PlantedConfig"}
    backbone_config.write_text(json.dumps(settings))
    metaembed_config = folder / "metaembed_config.json"
    settings = json.loads(metaembed_config.read_text())
    settings["backbone"]["trust_remote_code"] = True
    metaembed_config.write_text(json.dumps(settings))


def test_a_folder_cannot_turn_on_its_own_remote_code(make_model, tmp_path):
    folder = make_model(num_query_meta=2, num_candidate_meta=2).save_pretrained(tmp_path / "model")
    marker = tmp_path / "remote-code-ran"
    _plant_remote_code(folder, marker)
    with pytest.warns(UserWarning, match="trust_remote_code.*ignored"):
        model = MetaEmbed.from_pretrained(folder)
    assert not marker.exists()
    assert model.backbone_params.trust_remote_code is False  # what it was loaded with


def test_the_caller_decides_on_remote_code(make_model, tmp_path, recwarn):
    folder = make_model(num_query_meta=2, num_candidate_meta=2).save_pretrained(tmp_path / "model")
    assert MetaEmbed.from_pretrained(folder, trust_remote_code=True).backbone_params.trust_remote_code is True
    assert not [w for w in recwarn if "trust_remote_code" in str(w.message)]


@pytest.mark.parametrize("name", ["backbone/model.safetensors", "metaembed_head.safetensors"])
def test_a_torn_safetensors_file_is_named_with_what_to_do(make_model, tmp_path, name):
    folder = make_model(num_query_meta=2, num_candidate_meta=2).save_pretrained(tmp_path / "model")
    torn = folder / name
    torn.write_bytes(torn.read_bytes()[: torn.stat().st_size // 2])
    with pytest.raises(ValueError, match="re-run") as error:
        MetaEmbed.from_pretrained(folder)
    assert str(torn) in str(error.value) and "download" in str(error.value)


# ---- inputs encode_* refuses, and images it must read right -------------------------------


@pytest.mark.parametrize("side", ["query", "candidate"])
def test_a_bare_string_is_refused_not_read_letter_by_letter(make_model, side, tmp_path):
    model = make_model(num_query_meta=2, num_candidate_meta=2)
    encode = getattr(model, f"encode_{side}s" if side == "candidate" else "encode_queries")
    with pytest.raises(TypeError, match=r"texts.*\['cat'\]"):
        encode(texts="cat")
    with pytest.raises(TypeError, match=r"images.*one entry per input"):
        encode(images=str(tmp_path / "cat.png"))
    with pytest.raises(TypeError, match=r"images.*one entry per input"):
        encode(images=b"\x89PNG")


def test_a_decompression_bomb_names_the_input_and_the_limit(make_model, tmp_path, monkeypatch):
    from PIL import Image

    from metaembed.images import ImageDecodeError

    path = tmp_path / "bomb.png"
    Image.new("L", (64, 64)).save(path)  # compresses to almost nothing, like a real bomb
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # so 64 x 64 counts as one
    model = make_model(num_query_meta=2, num_candidate_meta=2)
    with pytest.raises(ImageDecodeError, match=r"query 1: .*bomb\.png.*limit of 2000 pixels"):
        model.encode_queries(["a", "b"], [None, path])
    with pytest.raises(ImageDecodeError, match=r"query 0: .* bytes.*limit of 2000 pixels"):
        model.encode_queries(images=[path.read_bytes()])


def _sixteen_bit(levels):
    """A 16-bit greyscale image with these 8-bit levels (v * 257 spans 0..65535)."""
    import numpy as np
    from PIL import Image

    image = Image.fromarray((levels.astype(np.uint16) * 257))
    assert image.mode == "I;16"
    return image


def test_sixteen_bit_images_keep_their_grey_levels(make_model, tmp_path):
    import numpy as np
    from PIL import Image

    levels = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    eight = Image.fromarray(levels)
    path = tmp_path / "wide.png"
    _sixteen_bit(levels).save(path)
    model = make_model(num_query_meta=2, num_candidate_meta=2)
    with torch.inference_mode():
        expected, _ = model.encode_candidates(images=[eight])
        as_image, _ = model.encode_candidates(images=[_sixteen_bit(levels)])
        as_file, _ = model.encode_candidates(images=[path])
        white, _ = model.encode_candidates(images=[Image.new("L", (64, 64), 255)])
    torch.testing.assert_close(as_image, expected)
    torch.testing.assert_close(as_file, expected)
    assert not torch.allclose(white, expected, atol=1e-3)


def test_images_without_a_fixed_range_are_refused(make_model):
    import numpy as np
    from PIL import Image

    from metaembed.images import ImageDecodeError

    model = make_model(num_query_meta=2, num_candidate_meta=2)
    floats = Image.fromarray(np.ones((32, 32), dtype=np.float32))
    with pytest.raises(ImageDecodeError, match="candidate 1: .*float.*8- or 16-bit"):
        model.encode_candidates(["a", "b"], [None, floats])
    wide = Image.fromarray(np.full((32, 32), 70000, dtype=np.int32))
    with pytest.raises(ImageDecodeError, match="query 0: .*outside the 16-bit range"):
        model.encode_queries(images=[wide])


def test_the_saved_folder_does_not_depend_on_earlier_padded_calls(make_model, tmp_path):
    """A run resumed at its last step saves before tokenizing anything: same bytes as a full run."""
    model = make_model()
    model.save_pretrained(tmp_path / "fresh")
    model.processor.tokenizer(["a", "a longer text"], padding=True, truncation=True, max_length=8)
    model.save_pretrained(tmp_path / "after")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        fresh = (tmp_path / "fresh" / "backbone" / name).read_bytes()
        assert (tmp_path / "after" / "backbone" / name).read_bytes() == fresh, name


def test_positions_from_the_host_extended_over_meta_tokens_equal_the_rope_index_of_the_whole_input(make_model, images):
    """`states` numbers the meta tokens on from the host-side positions; transformers' rope index of
    the input with the meta tokens appended gives the same, for text, image and padded rows."""
    from metaembed.batching import build_batch
    from metaembed.model import _append_positions, _append_slots

    model = make_model(num_query_meta=2, num_candidate_meta=4)
    inputs = build_batch(model.processor, "candidate", ["a red circle", None, "two words here and more"],
                         [None, images[0], images[1]])
    ids, mask, types = _append_slots(inputs["input_ids"], inputs["attention_mask"], inputs["mm_token_type_ids"], 6)
    expected, _ = model._base().get_rope_index(input_ids=ids, mm_token_type_ids=types,
                                               image_grid_thw=inputs["image_grid_thw"], attention_mask=mask)
    got = _append_positions(model.positions(**inputs), 6)
    assert torch.equal(got[:, mask.bool()], expected[:, mask.bool()])
    assert int(inputs["attention_mask"].sum(dim=1).min()) < inputs["input_ids"].shape[1]  # some row is padded
