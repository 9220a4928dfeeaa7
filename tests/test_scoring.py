"""maxsim against an explicit-loop float64 reference, at every budget, plus its failure modes."""

from __future__ import annotations

import math

import pytest
import torch

from metaembed import scoring
from metaembed.scoring import auto_chunk_size, maxsim, query_block_size

B, N, R_Q, R_C, D = 3, 5, 4, 6, 8
ALL_BUDGETS = [(r_q, r_c) for r_q in range(1, R_Q + 1) for r_c in range(1, R_C + 1)]


def unit_vectors(*shape: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(*shape, generator=generator), dim=-1).to(dtype)


def random_mask(rows: int, width: int, seed: int) -> torch.Tensor:
    """Random real/padding pattern whose first vector is always real, so every budget is valid."""
    generator = torch.Generator().manual_seed(seed)
    mask = torch.rand(rows, width, generator=generator) < 0.6
    mask[:, 0] = True
    return mask


def loop_reference(q, c, budget, q_mask=None, c_mask=None) -> torch.Tensor:
    """The definition, one dot product at a time, in Python floats (float64)."""
    r_q, r_c = budget
    qv, cv = q.double().tolist(), c.double().tolist()
    scores = []
    for b in range(len(qv)):
        row = []
        for n in range(len(cv)):
            total = 0.0
            for i in range(r_q):
                if q_mask is not None and not q_mask[b, i]:
                    continue
                best = -math.inf
                for j in range(r_c):
                    if c_mask is not None and not c_mask[n, j]:
                        continue
                    best = max(best, sum(x * y for x, y in zip(qv[b][i], cv[n][j])))
                total += best
            row.append(total)
        scores.append(row)
    return torch.tensor(scores, dtype=torch.float64).reshape(len(qv), len(cv))


def differentiable_reference(q, c, budget) -> torch.Tensor:
    """Loop reference built from torch ops so that float64 autograd gives reference gradients."""
    r_q, r_c = budget
    rows = []
    for b in range(q.shape[0]):
        row = []
        for n in range(c.shape[0]):
            terms = [torch.stack([q[b, i] @ c[n, j] for j in range(r_c)]).max() for i in range(r_q)]
            row.append(torch.stack(terms).sum())
        rows.append(torch.stack(row))
    return torch.stack(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_float32_matches_loop_reference_at_every_budget(seed: int, masked: bool) -> None:
    q, c = unit_vectors(B, R_Q, D, seed=seed), unit_vectors(N, R_C, D, seed=seed + 100)
    q_mask = random_mask(B, R_Q, seed) if masked else None
    c_mask = random_mask(N, R_C, seed + 1) if masked else None
    for budget in ALL_BUDGETS:
        got = maxsim(q, c, budget, q_mask=q_mask, c_mask=c_mask)
        assert got.shape == (B, N) and got.dtype == torch.float32
        want = loop_reference(q, c, budget, q_mask, c_mask)
        torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=0, msg=f"budget {budget}")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_bfloat16_matches_reference_on_rounded_inputs(seed: int, masked: bool) -> None:
    q = unit_vectors(B, R_Q, D, seed=seed, dtype=torch.bfloat16)
    c = unit_vectors(N, R_C, D, seed=seed + 100, dtype=torch.bfloat16)
    q_mask = random_mask(B, R_Q, seed) if masked else None
    c_mask = random_mask(N, R_C, seed + 1) if masked else None
    for budget in ALL_BUDGETS:
        got = maxsim(q, c, budget, q_mask=q_mask, c_mask=c_mask)
        assert got.dtype == torch.float32
        want = loop_reference(q, c, budget, q_mask, c_mask)
        # Each max term is a |similarity| <= ~1 rounded to bf16 (half an ulp: 2**-8 relative);
        # the float32 sum over r_q terms adds nothing visible on top.
        tolerance = budget[0] * 2.0**-8 * 1.01
        torch.testing.assert_close(got.double(), want, atol=tolerance, rtol=0, msg=f"budget {budget}")


def test_float64_input_keeps_float64_precision() -> None:
    q = unit_vectors(B, R_Q, D, seed=3).double()
    c = unit_vectors(N, R_C, D, seed=4).double()
    got = maxsim(q, c, (3, 5))
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, loop_reference(q, c, (3, 5)), atol=1e-12, rtol=0)


def test_default_budget_is_full_size() -> None:
    q, c = unit_vectors(B, R_Q, D, seed=5), unit_vectors(N, R_C, D, seed=6)
    torch.testing.assert_close(maxsim(q, c), maxsim(q, c, (R_Q, R_C)), atol=0, rtol=0)
    want = loop_reference(q, c, (R_Q, R_C))
    torch.testing.assert_close(maxsim(q, c).double(), want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("budget", [(1, 1), (2, 3), (4, 6)])
@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 100])
def test_chunked_equals_unchunked(budget: tuple[int, int], chunk_size: int) -> None:
    q, c = unit_vectors(B, R_Q, D, seed=7), unit_vectors(7, R_C, D, seed=8)
    c_mask = random_mask(7, R_C, seed=9)
    whole = maxsim(q, c, budget, c_mask=c_mask, chunk_size=1000)
    chunked = maxsim(q, c, budget, c_mask=c_mask, chunk_size=chunk_size)
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("budget", [(1, 1), (1, 4), (3, 4)])
def test_query_blocks_equal_one_block(monkeypatch: pytest.MonkeyPatch, budget: tuple[int, int]) -> None:
    q, c = unit_vectors(5, R_Q, D, seed=10), unit_vectors(N, R_C, D, seed=11)
    q_mask, c_mask = random_mask(5, R_Q, 12), random_mask(N, R_C, 13)
    whole = maxsim(q, c, budget, q_mask=q_mask, c_mask=c_mask)
    # Shrink the hard cap so that the 5 queries are split into blocks of 1 or 2.
    monkeypatch.setattr(scoring, "_MAX_SIMS_BYTES", 8)
    assert query_block_size(5, *budget, 4) < 5
    blocked = maxsim(q, c, budget, q_mask=q_mask, c_mask=c_mask)
    torch.testing.assert_close(blocked, whole, atol=1e-6, rtol=0)
    want = loop_reference(q, c, budget, q_mask, c_mask)
    torch.testing.assert_close(blocked.double(), want, atol=1e-5, rtol=0)


def test_chunk_sizes_respect_memory_budget() -> None:
    cases = [(32, 16, 64, 128, 4), (32, 1, 1, 128, 2), (1, 1, 64, 4096, 4)]
    for num_queries, r_q, r_c, dim, size in cases:
        chunk = auto_chunk_size(num_queries, r_q, r_c, dim, size)
        assert chunk >= 1
        assert chunk * num_queries * r_q * r_c * size <= scoring._TARGET_CHUNK_BYTES
        assert chunk * r_c * dim * size <= scoring._TARGET_CHUNK_BYTES
    # A batch whose single-candidate similarities exceed the hard cap gets split into blocks.
    block = query_block_size(200_000, 16, 64, 4)
    assert 1 <= block < 200_000 and block * 16 * 64 * 4 <= scoring._MAX_SIMS_BYTES


@pytest.mark.parametrize("budget", [(1, 1), (2, 5), (4, 6)])
def test_budget_prefix_equals_slicing(budget: tuple[int, int]) -> None:
    q, c = unit_vectors(B, R_Q, D, seed=12), unit_vectors(N, R_C, D, seed=13)
    q_mask, c_mask = random_mask(B, R_Q, 14), random_mask(N, R_C, 15)
    r_q, r_c = budget
    prefix = maxsim(q, c, budget, q_mask=q_mask, c_mask=c_mask)
    sliced = maxsim(q[:, :r_q].clone(), c[:, :r_c].clone(), q_mask=q_mask[:, :r_q].clone(),
                    c_mask=c_mask[:, :r_c].clone())
    torch.testing.assert_close(prefix, sliced, atol=1e-6, rtol=0)


@pytest.mark.parametrize("huge", [1e30, -1e30])
def test_masked_vectors_never_count(huge: float) -> None:
    q, c = unit_vectors(B, R_Q, D, seed=16), unit_vectors(N, R_C, D, seed=17)
    q_mask, c_mask = random_mask(B, R_Q, 18), random_mask(N, R_C, 19)
    clean = maxsim(q, c, q_mask=q_mask, c_mask=c_mask)
    poisoned_q = torch.where(q_mask[..., None], q, torch.full_like(q, huge))
    poisoned_c = torch.where(c_mask[..., None], c, torch.full_like(c, huge))
    poisoned = maxsim(poisoned_q, poisoned_c, q_mask=q_mask, c_mask=c_mask, chunk_size=2)
    torch.testing.assert_close(poisoned, clean, atol=0, rtol=0)
    assert clean.abs().max() < 10  # the huge values really were kept out


def test_padded_candidate_scores_like_its_unpadded_self() -> None:
    q, c = unit_vectors(B, R_Q, D, seed=20), unit_vectors(N, R_C, D, seed=21)
    lengths = [1, 6, 3, 2, 5]
    c_mask = torch.arange(R_C)[None, :] < torch.tensor(lengths)[:, None]
    padded = maxsim(q, c, c_mask=c_mask)
    for n, length in enumerate(lengths):
        alone = maxsim(q, c[n:n + 1, :length])
        torch.testing.assert_close(padded[:, n:n + 1], alone, atol=1e-6, rtol=0)


def test_zero_vectors_score_zero() -> None:
    zeros_q, zeros_c = torch.zeros(B, R_Q, D), torch.zeros(N, R_C, D)
    assert torch.equal(maxsim(zeros_q, zeros_c, (2, 3)), torch.zeros(B, N))
    assert torch.equal(maxsim(zeros_q, zeros_c, c_mask=random_mask(N, R_C, 22)), torch.zeros(B, N))


@pytest.mark.parametrize("num_queries, num_candidates", [(0, N), (B, 0), (0, 0)])
def test_empty_batch_gives_empty_scores(num_queries: int, num_candidates: int) -> None:
    q, c = torch.zeros(num_queries, R_Q, D), torch.zeros(num_candidates, R_C, D)
    scores = maxsim(q, c, (2, 3))
    assert scores.shape == (num_queries, num_candidates) and scores.dtype == torch.float32
    q.requires_grad_(True)
    grad_scores = maxsim(q, c, (2, 3))
    assert grad_scores.shape == (num_queries, num_candidates) and grad_scores.requires_grad


def test_non_contiguous_inputs() -> None:
    q = unit_vectors(R_Q, B, D, seed=23).transpose(0, 1)  # [B, R_Q, D] with swapped strides
    wide = unit_vectors(N, R_C, 2 * D, seed=24)
    c = wide[..., :D]  # rows of D values spaced 2D apart
    assert not q.is_contiguous() and not c.is_contiguous()
    got = maxsim(q, c, (3, 4), chunk_size=2)
    torch.testing.assert_close(got.double(), loop_reference(q, c, (3, 4)), atol=1e-5, rtol=0)


def test_inference_mode_and_no_grad_with_grad_inputs() -> None:
    q = unit_vectors(B, R_Q, D, seed=25).requires_grad_(True)
    c = unit_vectors(N, R_C, D, seed=26)
    want = loop_reference(q.detach(), c, (2, 5))
    with torch.inference_mode():
        torch.testing.assert_close(maxsim(q.detach(), c, (2, 5)).double(), want, atol=1e-5, rtol=0)
    with torch.no_grad():
        scores = maxsim(q, c, (2, 5))
        assert not scores.requires_grad
        torch.testing.assert_close(scores.double(), want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradients_match_float64_autograd_reference(dtype: torch.dtype) -> None:
    q64 = unit_vectors(B, R_Q, D, seed=27).double()
    c64 = unit_vectors(N, R_C, D, seed=28).double()
    weights = torch.randn(B, N, generator=torch.Generator().manual_seed(29), dtype=torch.float64)
    budget = (3, 4)

    ref_q, ref_c = q64.clone().requires_grad_(True), c64.clone().requires_grad_(True)
    (differentiable_reference(ref_q, ref_c, budget) * weights).sum().backward()

    q, c = q64.to(dtype).requires_grad_(True), c64.to(dtype).requires_grad_(True)
    scores = maxsim(q, c, budget)
    assert scores.requires_grad
    (scores * weights.to(scores.dtype)).sum().backward()
    tolerance = 1e-10 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(q.grad.double(), ref_q.grad, atol=tolerance, rtol=0)
    torch.testing.assert_close(c.grad.double(), ref_c.grad, atol=tolerance, rtol=0)
    # Vectors beyond the budget take no part in the score, so they get exactly zero gradient.
    assert torch.count_nonzero(q.grad[:, 3:]) == 0 and torch.count_nonzero(c.grad[:, 4:]) == 0


def test_gradients_skip_masked_vectors() -> None:
    q = unit_vectors(B, R_Q, D, seed=30).double().requires_grad_(True)
    c = unit_vectors(N, R_C, D, seed=31).double().requires_grad_(True)
    q_mask, c_mask = random_mask(B, R_Q, 32), random_mask(N, R_C, 33)
    scores = maxsim(q, c, q_mask=q_mask, c_mask=c_mask)
    want = loop_reference(q.detach(), c.detach(), (R_Q, R_C), q_mask, c_mask)
    torch.testing.assert_close(scores, want, atol=1e-12, rtol=0)
    scores.sum().backward()
    assert torch.count_nonzero(q.grad[~q_mask]) == 0 and torch.count_nonzero(c.grad[~c_mask]) == 0
    assert torch.count_nonzero(q.grad[q_mask]) > 0


def _inputs(**overrides):
    kwargs = dict(q=torch.zeros(B, R_Q, D), c=torch.zeros(N, R_C, D))
    kwargs.update(overrides)
    return kwargs


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (_inputs(q=torch.zeros(B, D)), r"q must be a 3-D tensor \[B, R_q, D\], got \(3, 8\)"),
        (_inputs(c=torch.zeros(1, N, R_C, D)), r"c must be a 3-D tensor \[N, R_c, D\]"),
        (_inputs(c=[[0.0]]), r"c must be a 3-D tensor .*got list"),
        (_inputs(c=torch.zeros(N, R_C, 6)), r"dim mismatch, q has D=8 but c has D=6"),
        (_inputs(c=torch.zeros(N, R_C, D, dtype=torch.bfloat16)),
         r"q is torch.float32 but c is torch.bfloat16; cast one"),
        (_inputs(q=torch.zeros(B, R_Q, D, dtype=torch.int64)), r"q must hold floating-point"),
        (_inputs(q=torch.zeros(B, R_Q, 0), c=torch.zeros(N, R_C, 0)), r"dim D is 0"),
        (_inputs(c=torch.zeros(N, 0, D)), r"c holds 0 vectors per item"),
        (_inputs(budget=(5, 1)),
         r"budget r_q=5 exceeds the 4 query vectors in q \(R_q=4\); use r_q <= 4"),
        (_inputs(budget=(1, 7)), r"budget r_c=7 exceeds the 6 candidate vectors in c \(R_c=6\)"),
        (_inputs(budget=(0, 1)), r"budget r_q=0 must be >= 1"),
        (_inputs(budget=(1, -2)), r"budget r_c=-2 must be >= 1"),
        (_inputs(budget=(1, 2, 3)), r"budget must be a pair of ints"),
        (_inputs(budget=(1.0, 2)), r"budget must be a pair of ints"),
        (_inputs(budget=(True, 2)), r"budget must be a pair of ints"),
        (_inputs(budget=4), r"budget must be a pair of ints"),
        (_inputs(q_mask=torch.ones(B, R_Q)), r"q_mask must be a bool tensor of shape \(3, 4\)"),
        (_inputs(c_mask=torch.ones(N, R_C + 1, dtype=torch.bool)),
         r"c_mask must be a bool tensor of shape \(5, 6\)"),
        (_inputs(chunk_size=0), r"chunk_size must be a positive int or None, got 0"),
        (_inputs(chunk_size=2.5), r"chunk_size must be a positive int"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        maxsim(**kwargs)


def test_candidate_without_real_vector_in_budget_is_refused() -> None:
    c_mask = torch.ones(N, R_C, dtype=torch.bool)
    c_mask[1, :3] = False
    c_mask[4, :2] = False
    with pytest.raises(ValueError, match=r"candidate \[1, 4\] has no real vector among its first 2 "
                                         r"\(c_mask is all False there\)"):
        maxsim(torch.zeros(B, R_Q, D), torch.zeros(N, R_C, D), (1, 2), c_mask=c_mask)
    # A larger budget reaches a real vector of each, so the same mask is fine there.
    assert maxsim(torch.zeros(B, R_Q, D), torch.zeros(N, R_C, D), (1, 4), c_mask=c_mask).shape == (B, N)


def test_query_without_real_vector_in_budget_is_refused() -> None:
    q_mask = torch.ones(B, R_Q, dtype=torch.bool)
    q_mask[0] = False
    with pytest.raises(ValueError, match=r"query \[0\] has no real vector among its first 4"):
        maxsim(torch.zeros(B, R_Q, D), torch.zeros(N, R_C, D), q_mask=q_mask)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_query_is_refused(bad: float) -> None:
    q = unit_vectors(B, R_Q, D, seed=34)
    q[1, 2, 5] = bad
    message = r"q contains NaN or inf within the budget \(first at query 1, vector 2\)"
    with pytest.raises(ValueError, match=message):
        maxsim(q, unit_vectors(N, R_C, D, seed=35))


@pytest.mark.parametrize("budget", [(2, 1), (2, 4)], ids=["r_c=1", "r_c=4"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_candidate_is_refused(budget: tuple[int, int], bad: float) -> None:
    c = unit_vectors(N, R_C, D, seed=36)
    c[3, 0, 1] = bad
    message = r"c contains NaN or inf within the budget \(first at candidate 3, vector 0\)"
    with pytest.raises(ValueError, match=message):
        maxsim(unit_vectors(B, R_Q, D, seed=37), c, budget, chunk_size=2)


def test_non_finite_masked_candidate_vector_is_refused_too() -> None:
    c = unit_vectors(N, R_C, D, seed=38)
    c[2, 3] = float("nan")
    c_mask = torch.ones(N, R_C, dtype=torch.bool)
    c_mask[2, 3] = False
    with pytest.raises(ValueError, match=r"candidate 2, vector 3"):
        maxsim(unit_vectors(B, R_Q, D, seed=39), c, c_mask=c_mask)


def test_non_finite_beyond_budget_is_never_read() -> None:
    q, c = unit_vectors(B, R_Q, D, seed=40), unit_vectors(N, R_C, D, seed=41)
    q[:, 3], c[:, 5] = float("nan"), float("inf")
    got = maxsim(q, c, (3, 5))
    torch.testing.assert_close(got.double(), loop_reference(q, c, (3, 5)), atol=1e-5, rtol=0)


def test_overflowing_scores_are_refused() -> None:
    q = torch.full((B, R_Q, D), 1e20)
    c = torch.full((N, R_C, D), 1e20)
    with pytest.raises(ValueError, match=r"scores overflowed .* expected to be L2-normalised"):
        maxsim(q, c, (1, 1))
