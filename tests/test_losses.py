"""MMR loss against a loop-by-loop float64 reference, plus validation and sanity checks."""

from __future__ import annotations

import math

import pytest
import torch

from metaembed.losses import DEFAULT_GROUPS, MatryoshkaMultiVectorLoss, MMRLossOutput, validate_groups

SMALL_GROUPS = [(1, 1, 1.0), (2, 4, 1.0), (4, 8, 1.0)]
UNEVEN_GROUPS = [(1, 2, 0.5), (1, 4, 2.0), (3, 4, 1.0), (4, 8, 1.5)]


def reference_loss(q, pos, neg, q_mask, pos_mask, neg_mask, groups, tau, scale_by_query_vectors):
    """The MMR loss spelled out with Python loops; returns (total, [L_g])."""
    batch = q.shape[0]

    def score(u, cand, cand_mask, r_q, r_c):
        total = q.new_zeros(())
        for i in range(r_q):
            if not q_mask[u, i]:
                continue
            dots = [q[u, i] @ cand[j] for j in range(r_c) if cand_mask[j]]
            if dots:  # no real candidate vector in the budget counts as 0
                total = total + torch.stack(dots).max()
        return total / r_q if scale_by_query_vectors else total

    group_losses = []
    for r_q, r_c, _ in groups:
        per_query = []
        for u in range(batch):
            logits = [score(u, pos[m], pos_mask[m], r_q, r_c) / tau for m in range(batch)]
            if neg is not None:
                logits += [score(u, neg[u, k], neg_mask[u, k], r_q, r_c) / tau for k in range(neg.shape[1])]
            logits = torch.stack(logits)
            per_query.append(torch.logsumexp(logits, dim=0) - logits[u])
        group_losses.append(torch.stack(per_query).mean())
    total = sum(w * loss for (_, _, w), loss in zip(groups, group_losses)) / len(groups)
    return total, group_losses


def random_mask(shape, generator):
    """Random bool mask with at least one real vector per row (the row's last dim)."""
    mask = torch.rand(shape, generator=generator) < 0.7
    keep = torch.randint(0, shape[-1], shape[:-1], generator=generator)
    mask.scatter_(-1, keep.unsqueeze(-1), True)
    return mask


def make_inputs(batch, r_q, r_c, dim, num_neg, masked, seed=0):
    """num_neg: None (no hard negatives), 1 (the [B, R_c, D] form) or K >= 2 ([B, K, R_c, D])."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, r_q, dim, generator=g, dtype=torch.float64)
    pos = torch.randn(batch, r_c, dim, generator=g, dtype=torch.float64)
    neg_shape = None if num_neg is None else ((batch, r_c, dim) if num_neg == 1 else (batch, num_neg, r_c, dim))
    neg = None if neg_shape is None else torch.randn(neg_shape, generator=g, dtype=torch.float64)
    # Unit vectors keep the logits/tau in the range the model produces.
    q, pos = torch.nn.functional.normalize(q, dim=-1), torch.nn.functional.normalize(pos, dim=-1)
    neg = None if neg is None else torch.nn.functional.normalize(neg, dim=-1)
    masks = (None, None, None)
    if masked:
        masks = (
            random_mask(q.shape[:-1], g),
            random_mask(pos.shape[:-1], g),
            None if neg is None else random_mask(neg.shape[:-1], g),
        )
    return q, pos, neg, masks


def run_both(groups, r_q, r_c, num_neg, masked, scale, tau=0.05, batch=4, dim=5, seed=0):
    q, pos, neg, (q_mask, pos_mask, neg_mask) = make_inputs(batch, r_q, r_c, dim, num_neg, masked, seed)
    tensors = [t for t in (q, pos, neg) if t is not None]
    module = MatryoshkaMultiVectorLoss(groups, tau, r_q, r_c, scale_by_query_vectors=scale)

    leaves = [t.clone().requires_grad_() for t in tensors]
    out = module(*leaves[:2], leaves[2] if neg is not None else None, q_mask, pos_mask, neg_mask)
    out.loss.backward()

    ref_leaves = [t.clone().requires_grad_() for t in tensors]
    ref_neg, ref_neg_mask = None, None
    if neg is not None:  # the reference always sees the [B, K, R_c, D] form
        ref_neg = ref_leaves[2] if neg.dim() == 4 else ref_leaves[2].unsqueeze(1)
        if neg_mask is not None:
            ref_neg_mask = neg_mask if neg_mask.dim() == 3 else neg_mask.unsqueeze(1)
        else:
            ref_neg_mask = torch.ones(ref_neg.shape[:-1], dtype=torch.bool)
    ones = lambda t: torch.ones(t.shape[:-1], dtype=torch.bool)  # noqa: E731
    ref_total, ref_groups = reference_loss(
        ref_leaves[0], ref_leaves[1], ref_neg,
        q_mask if q_mask is not None else ones(q), pos_mask if pos_mask is not None else ones(pos),
        ref_neg_mask, module.groups, tau, scale,
    )  # fmt: skip
    ref_total.backward()
    return out, leaves, ref_total, ref_groups, ref_leaves


@pytest.mark.parametrize("scale", [False, True])
@pytest.mark.parametrize("num_neg", [None, 1, 2])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("groups", [SMALL_GROUPS, UNEVEN_GROUPS, [(4, 8, 2.0)]])
def test_matches_loop_reference(groups, masked, num_neg, scale):
    out, leaves, ref_total, ref_groups, ref_leaves = run_both(groups, 4, 8, num_neg, masked, scale)
    assert isinstance(out, MMRLossOutput)
    torch.testing.assert_close(out.loss, ref_total.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out.group_losses, torch.stack(ref_groups).detach(), rtol=1e-10, atol=1e-10)
    assert not out.group_losses.requires_grad  # documented: detached, for logging
    for leaf, ref_leaf in zip(leaves, ref_leaves):
        torch.testing.assert_close(leaf.grad, ref_leaf.grad, rtol=1e-9, atol=1e-10)


def test_default_groups_match_reference_at_full_size():
    out, leaves, ref_total, _, ref_leaves = run_both(DEFAULT_GROUPS, 16, 64, 1, True, False, tau=0.03, batch=2, dim=3)
    torch.testing.assert_close(out.loss, ref_total.detach(), rtol=1e-10, atol=1e-10)
    for leaf, ref_leaf in zip(leaves, ref_leaves):
        torch.testing.assert_close(leaf.grad, ref_leaf.grad, rtol=1e-9, atol=1e-10)


def test_masked_vectors_never_count():
    q, pos, neg, (q_mask, pos_mask, neg_mask) = make_inputs(3, 4, 8, 5, 2, masked=True, seed=3)
    module = MatryoshkaMultiVectorLoss(SMALL_GROUPS, 0.05, 4, 8)
    base = module(q, pos, neg, q_mask, pos_mask, neg_mask).loss
    # Huge values in masked slots would dominate every max and sum if they leaked in.
    loud = lambda t, m: t.masked_fill(~m.unsqueeze(-1), 1e6)  # noqa: E731
    changed = module(loud(q, q_mask), loud(pos, pos_mask), loud(neg, neg_mask), q_mask, pos_mask, neg_mask).loss
    torch.testing.assert_close(changed, base, rtol=1e-12, atol=1e-12)


def test_candidate_without_real_vectors_in_budget_scores_zero():
    # Group (1, 1) sees only vector 0; the positive of query 0 has it masked, so its score is 0
    # while the other positive scores 1: the loss is log(1 + e^(1/tau)) for query 0.
    tau = 0.5
    q = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]], dtype=torch.float64)
    pos = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    pos_mask = torch.tensor([[False, True], [True, True]])
    module = MatryoshkaMultiVectorLoss([(1, 1, 1.0)], tau, 1, 2)
    out = module(q.requires_grad_(), pos.requires_grad_(), pos_mask=pos_mask)
    expected_q0 = math.log(1 + math.exp(1 / tau))
    expected_q1 = math.log(math.exp(0.0) + math.exp(0.0))  # both positives score 0 against q1
    assert out.loss.item() == pytest.approx((expected_q0 + expected_q1) / 2, rel=1e-12)
    out.loss.backward()
    assert torch.isfinite(q.grad).all() and torch.isfinite(pos.grad).all()
    assert pos.grad[0, 0].abs().sum() == 0  # masked vector receives no gradient


def test_scale_by_query_vectors_equals_temperature_times_r_q():
    q, pos, neg, masks = make_inputs(4, 4, 8, 5, 1, masked=True, seed=5)
    scaled = MatryoshkaMultiVectorLoss([(3, 8, 1.0)], 0.05, 4, 8, scale_by_query_vectors=True)
    hotter = MatryoshkaMultiVectorLoss([(3, 8, 1.0)], 0.05 * 3, 4, 8)
    torch.testing.assert_close(scaled(q, pos, neg, *masks).loss, hotter(q, pos, neg, *masks).loss)


def test_total_is_weighted_mean_over_groups():
    q, pos, neg, masks = make_inputs(4, 4, 8, 5, 2, masked=False, seed=7)
    out = MatryoshkaMultiVectorLoss(UNEVEN_GROUPS, 0.05, 4, 8)(q, pos, neg, *masks)
    weights = torch.tensor([w for _, _, w in UNEVEN_GROUPS], dtype=torch.float64)
    torch.testing.assert_close(out.loss, (weights * out.group_losses).sum() / len(UNEVEN_GROUPS))
    assert list(out.by_group()) == ["1x2", "1x4", "3x4", "4x8"]
    assert out.by_group()["3x4"] == pytest.approx(out.group_losses[2].item())


def test_matching_embeddings_give_much_smaller_loss_than_random():
    g = torch.Generator().manual_seed(11)
    q = torch.nn.functional.normalize(torch.randn(8, 16, 64, generator=g), dim=-1)
    pos_matched = torch.cat([q, q, q, q], dim=1)  # 64 candidate vectors, first 16 equal to q
    pos_random = torch.nn.functional.normalize(torch.randn(8, 64, 64, generator=g), dim=-1)
    module = MatryoshkaMultiVectorLoss()
    matched, random = module(q, pos_matched).loss.item(), module(q, pos_random).loss.item()
    assert matched < 0.05 * random
    assert random > 0.5 * math.log(8)  # random scores leave the 8-way choice close to chance


def test_low_precision_inputs_give_float32_loss():
    q, pos, neg, masks = make_inputs(4, 4, 8, 5, 1, masked=True, seed=2)
    module = MatryoshkaMultiVectorLoss(SMALL_GROUPS, 0.03, 4, 8)
    low = module(q.bfloat16(), pos.bfloat16(), neg.bfloat16(), *masks).loss
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(module(q, pos, neg, *masks).loss.item(), rel=0.1)


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("groups", "match"),
    [
        ([], "non-empty"),
        ([(2, 4, 1.0), (1, 8, 1.0)], r"group 1 \(1, 8\) is not nested"),
        ([(2, 4, 1.0), (4, 2, 1.0)], r"group 1 \(4, 2\) is not nested"),
        ([(2, 4, 1.0), (2, 4, 1.0)], r"group 1 \(2, 4\) repeats group 0"),
        ([(1, 1, 1.0), (32, 64, 1.0)], r"group 1 \(32, 64\) exceeds"),
        ([(1, 65, 1.0)], r"group 0 \(1, 65\) exceeds"),
        ([(0, 1, 1.0)], "group 0 .* positive integers"),
        ([(1, -2, 1.0)], "group 0 .* positive integers"),
        ([(1.5, 2, 1.0)], "group 0 .* positive integers"),
        ([(1, 1, 0.0)], "group 0 .*weight must be a positive finite"),
        ([(1, 1, -1.0)], "weight must be a positive finite"),
        ([(1, 1, float("nan"))], "weight must be a positive finite"),
        ([(1, 1, float("inf"))], "weight must be a positive finite"),
        ([(1, 1, "1")], "weight must be a positive finite"),
        ([(1,)], r"group 0 must be \(r_q, r_c\)"),
    ],
)
def test_bad_groups_raise(groups, match):
    with pytest.raises(ValueError, match=match):
        MatryoshkaMultiVectorLoss(groups)


def test_validate_groups_normalises_and_checks_counts():
    assert validate_groups([(1, 2), (3, 4, 2)], 4, 4) == [(1, 2, 1.0), (3, 4, 2.0)]
    assert all(type(w) is float and type(r) is int for r, _, w in validate_groups([(1, 2, 3)], 1, 2))
    with pytest.raises(ValueError, match="num_candidate_vectors must be a positive integer"):
        validate_groups([(1, 1)], 4, 0)


@pytest.mark.parametrize("temperature", [0.0, -0.03, float("nan"), float("inf"), "0.03"])
def test_bad_temperature_raises(temperature):
    with pytest.raises(ValueError, match="temperature must be a positive finite"):
        MatryoshkaMultiVectorLoss(temperature=temperature)


def _call(module, **overrides):
    q, pos, neg, (q_mask, pos_mask, neg_mask) = make_inputs(3, 4, 8, 5, 2, masked=True)
    kwargs = dict(q=q, pos=pos, neg=neg, q_mask=q_mask, pos_mask=pos_mask, neg_mask=neg_mask)
    kwargs.update(overrides)
    return module(**kwargs)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"q": torch.zeros(0, 4, 5, dtype=torch.float64)}, "empty batch"),
        ({"q": torch.full((3, 4, 5), float("nan"), dtype=torch.float64)}, "q contains NaN or inf"),
        ({"pos": torch.full((3, 8, 5), float("inf"), dtype=torch.float64)}, "pos contains NaN or inf"),
        ({"neg": torch.full((3, 2, 8, 5), float("nan"), dtype=torch.float64)}, "neg contains NaN or inf"),
        ({"q": torch.zeros(3, 5, 5, dtype=torch.float64)}, r"q must be \[B, 4, D\]"),
        ({"q": torch.zeros(3, 4, dtype=torch.float64)}, r"q must be \[B, 4, D\]"),
        ({"pos": torch.zeros(3, 8, 6, dtype=torch.float64)}, r"pos must be \[B, R_c, D\] = \[3, 8, 5\]"),
        ({"pos": torch.zeros(2, 8, 5, dtype=torch.float64)}, r"pos must be \[B, R_c, D\]"),
        ({"pos": torch.zeros(3, 7, 5, dtype=torch.float64)}, r"pos must be \[B, R_c, D\]"),
        ({"neg": torch.zeros(3, 2, 7, 5, dtype=torch.float64)}, r"neg must be \[B, R_c, D\] or \[B, K, R_c, D\]"),
        ({"neg": torch.zeros(2, 8, 5, dtype=torch.float64)}, "neg must be"),
        ({"pos": torch.zeros(3, 8, 5)}, "pos has dtype torch.float32 but q has torch.float64"),
        ({"q_mask": torch.ones(3, 4, dtype=torch.int64)}, "q_mask must be a bool tensor of shape"),
        ({"pos_mask": torch.ones(3, 7, dtype=torch.bool)}, r"pos_mask must be a bool tensor of shape \[3, 8\]"),
        ({"neg": None}, "neg_mask was given without its embeddings"),
    ],
)
def test_bad_inputs_raise(overrides, match):
    module = MatryoshkaMultiVectorLoss(SMALL_GROUPS, 0.05, 4, 8)
    with pytest.raises(ValueError, match=match):
        _call(module, **overrides)


def test_absent_hard_negatives_are_dropped_not_scored_as_zero():
    """Queries without a hard negative carry an all-False negative mask: their logits omit it."""
    torch.manual_seed(3)
    groups = [(1, 1, 1.0), (2, 4, 1.0)]
    loss = MatryoshkaMultiVectorLoss(groups=groups, temperature=0.1, num_query_vectors=2, num_candidate_vectors=4)
    q, pos, neg = (torch.nn.functional.normalize(torch.randn(3, r, 8), dim=-1) for r in (2, 4, 4))
    neg_mask = torch.ones(3, 4, dtype=torch.bool)
    neg_mask[1] = False  # query 1 has no hard negative

    def score(query, candidate, r_q, r_c):
        return (query[:r_q] @ candidate[:r_c].T).amax(dim=1).sum()

    expected = []
    for r_q, r_c, _ in groups:
        per_query = []
        for i in range(3):
            logits = [score(q[i], pos[j], r_q, r_c) for j in range(3)]
            if i != 1:
                logits.append(score(q[i], neg[i], r_q, r_c))
            per_query.append(-torch.log_softmax(torch.stack(logits) / 0.1, dim=0)[i])
        expected.append(torch.stack(per_query).mean())
    got = loss(q, pos, neg, neg_mask=neg_mask)
    torch.testing.assert_close(got.loss, torch.stack(expected).mean())
