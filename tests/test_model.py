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
