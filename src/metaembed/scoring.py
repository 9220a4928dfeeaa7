"""Late-interaction (MaxSim) scoring with a Matryoshka retrieval budget.

    s(q, c) = sum over i < r_q of max over j < r_c of <q_i, c_j>

q holds B queries of R_q vectors, c holds N candidates of R_c vectors; a budget (r_q, r_c) keeps
the first r_q query and the first r_c candidate vectors (the Matryoshka prefixes of PAPER.md).
There is no division by r_q.

Decisions worth knowing:

* Masks mark real vectors (True) against padding (False). A masked query vector adds 0, a masked
  candidate vector never wins the max. A query or candidate with no real vector inside the
  budget has no meaningful score, so it raises ValueError instead of scoring 0 or -inf.
* Every vector inside the budget, masked or not, must be finite: NaN/inf raise ValueError.
  Vectors beyond the budget are never read, so they are not checked either.
* B = 0 or N = 0 is not an error: the result is an empty [B, N] tensor, like a matmul.
* Output is float32 (float64 for float64 inputs). With bfloat16 inputs the dot products come out
  of the bf16 matmul rounded to bf16 (relative error <= 2**-8 per max term) and the sum over
  query vectors is accumulated in float32; upcasting each chunk to float32 instead measured
  1.8x slower on a CPU with native bf16 dot products (see docs/benchmarks.md).
* Without autograd the [B, N] result is the transposed view of an [N, B] buffer, so it is not
  contiguous; every torch op accepts that, call .contiguous() where a consumer insists.
* Without autograd the candidates are scored in chunks into preallocated buffers, so memory stays
  bounded for any N. When an input requires grad the simple unchunked path runs instead: the
  backward pass of max needs every similarity anyway, so chunking would not save memory there.
"""

from __future__ import annotations

import torch

Budget = tuple[int, int]

# Similarity buffer per chunk: measured fastest around 1-4 MiB on a 2-core EPYC (it then stays in
# L2/L3 between the matmul that writes it and the max that reads it).
_TARGET_CHUNK_BYTES = 4 * 2**20
# Hard cap for one [queries, r_q, candidates, r_c] similarity buffer, whatever B is.
_MAX_SIMS_BYTES = 256 * 2**20


def maxsim(
    q: torch.Tensor,
    c: torch.Tensor,
    budget: Budget | None = None,
    q_mask: torch.Tensor | None = None,
    c_mask: torch.Tensor | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Score every query against every candidate: returns [B, N] (float32, float64 for float64).

    q: [B, R_q, D] query vectors; c: [N, R_c, D] candidate vectors, same dtype and device.
    budget: (r_q, r_c) with 1 <= r_q <= R_q and 1 <= r_c <= R_c; None means (R_q, R_c).
    q_mask / c_mask: bool [B, R_q] / [N, R_c], True where the vector is real.
    chunk_size: candidates per chunk on the no-grad path; None picks one from a memory budget.
    """
    r_q, r_c = _check_inputs(q, c, budget, q_mask, c_mask, chunk_size)
    out_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    needs_grad = torch.is_grad_enabled() and (q.requires_grad or c.requires_grad)
    if not needs_grad and (q.shape[0] == 0 or c.shape[0] == 0):
        return torch.zeros(q.shape[0], c.shape[0], dtype=out_dtype, device=q.device)

    queries = q[:, :r_q]
    _check_finite(queries.detach(), "q", "query")
    if q_mask is not None:
        # A zero query vector scores exactly 0 against every real candidate vector, so masked
        # query vectors drop out of the sum without a separate weighting pass.
        queries = queries.masked_fill(~q_mask[:, :r_q, None], 0)
    candidate_mask = None if c_mask is None else c_mask[:, :r_c]

    if needs_grad:
        _check_finite(c[:, :r_c].detach(), "c", "candidate")
        scores = _maxsim_autograd(queries, c[:, :r_c], candidate_mask, out_dtype)
    else:
        scores = _maxsim_chunked(queries, c, r_c, candidate_mask, out_dtype, chunk_size)
    # Same cheap-sum test as for the inputs: any inf/NaN score makes the total non-finite. With
    # r_c == 1 every similarity reaches the output, so this also catches non-finite candidates
    # (the chunk loop skips its own check there); the exact check below names the culprit.
    total = torch.sum(scores.detach())
    if not bool(torch.isfinite(total)) and not bool(torch.isfinite(scores.detach()).all()):
        _check_finite(c[:, :r_c].detach(), "c", "candidate")
        raise ValueError(
            "maxsim: scores overflowed to inf/NaN although the inputs are finite; the vectors "
            "are expected to be L2-normalised (|x| ~ 1), normalise them before scoring"
        )
    return scores


def auto_chunk_size(num_queries: int, r_q: int, r_c: int, dim: int, element_size: int) -> int:
    """Candidates per chunk so that one chunk's similarities and copied vectors stay cache-sized."""
    by_sims = _TARGET_CHUNK_BYTES // max(1, num_queries * r_q * r_c * element_size)
    by_vectors = _TARGET_CHUNK_BYTES // max(1, r_c * dim * element_size)
    return max(1, min(by_sims, by_vectors))


def query_block_size(num_queries: int, r_q: int, r_c: int, element_size: int) -> int:
    """Queries per block so that even a one-candidate chunk stays under the hard memory cap."""
    return max(1, min(num_queries, _MAX_SIMS_BYTES // (r_q * r_c * element_size)))


def _maxsim_chunked(
    queries: torch.Tensor,
    c: torch.Tensor,
    r_c: int,
    c_mask: torch.Tensor | None,
    out_dtype: torch.dtype,
    chunk_size: int | None,
) -> torch.Tensor:
    num_queries, r_q, dim = queries.shape
    num_candidates = c.shape[0]
    element_size = c.element_size()
    block = query_block_size(num_queries, r_q, r_c, element_size)
    # Filled as [N, B] so that each chunk's scores land in one contiguous slab, and returned as
    # its transposed view: copying to a contiguous [B, N] measured +40% on a (1, 1) budget.
    out = torch.empty(num_candidates, num_queries, dtype=out_dtype, device=c.device)
    for b0 in range(0, num_queries, block):
        q_block = queries[b0:b0 + block]
        chunk = chunk_size or auto_chunk_size(q_block.shape[0], r_q, r_c, dim, element_size)
        chunk = min(chunk, num_candidates)
        _score_query_block(q_block, c, r_c, c_mask, chunk, out[:, b0:b0 + block])
    return out.t()


def _score_query_block(
    q_block: torch.Tensor,
    c: torch.Tensor,
    r_c: int,
    c_mask: torch.Tensor | None,
    chunk: int,
    out: torch.Tensor,
) -> None:
    num_queries, r_q, dim = q_block.shape
    width = num_queries * r_q
    # One matmul per chunk: [chunk * r_c, D] @ [D, r_q * B]. With candidate vectors on the rows
    # and query vectors ordered r_q-major on the columns, both the max over r_c and the sum over
    # r_q reduce over a middle dimension, i.e. elementwise ops on contiguous rows, which
    # vectorise; reducing a short innermost dimension instead was 2-3x slower.
    q_t = q_block.transpose(0, 1).reshape(width, dim).t()
    # When no reduction or dtype change is left, the last step writes straight into the output.
    direct = r_q == 1 and c.dtype == out.dtype and out.is_contiguous()
    sims_buffer = best_buffer = None
    if not (direct and r_c == 1):
        sims_buffer = torch.empty(chunk * r_c, width, dtype=c.dtype, device=c.device)
    if not (direct or r_c == 1):
        best_buffer = torch.empty(chunk, width, dtype=c.dtype, device=c.device)
    for n0 in range(0, c.shape[0], chunk):
        n1 = min(n0 + chunk, c.shape[0])
        rows = n1 - n0
        # Copies only when the budget cuts into each candidate's vectors; the copy is cache-sized.
        vectors = c[n0:n1, :r_c].reshape(rows * r_c, dim)
        if r_c > 1:
            # The max can hide a -inf similarity, so check here, on the cache-hot chunk; with
            # r_c == 1 the output check in maxsim() sees every similarity and this pass is saved.
            _check_finite(vectors, "c", "candidate", offset=n0, per_item=r_c)
        target = out[n0:n1]
        sims = target if sims_buffer is None else sims_buffer[: rows * r_c]
        torch.mm(vectors, q_t, out=sims)
        if r_c == 1:
            # A single in-budget vector is real (validation refuses empty candidates): no mask.
            best = sims
        else:
            sims = sims.view(rows, r_c, width)
            if c_mask is not None:
                sims.masked_fill_(~c_mask[n0:n1, :, None], float("-inf"))
            best = target if best_buffer is None else best_buffer[:rows]
            torch.amax(sims, dim=1, out=best)
        if best is target:
            continue
        if r_q == 1:
            target.copy_(best)  # a dtype cast; sum over a size-1 dim costs ~5x more
        else:
            torch.sum(best.view(rows, r_q, num_queries), dim=1, dtype=out.dtype, out=target)


def _maxsim_autograd(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    c_mask: torch.Tensor | None,
    out_dtype: torch.dtype,
) -> torch.Tensor:
    sims = torch.einsum("bid,njd->bnij", queries, candidates)
    if c_mask is not None:
        sims = sims.masked_fill(~c_mask[None, :, None, :], float("-inf"))
    return sims.amax(dim=-1).sum(dim=-1, dtype=out_dtype)


def _check_finite(
    vectors: torch.Tensor, name: str, item: str, offset: int = 0, per_item: int | None = None
) -> None:
    # A plain sum is ~30x cheaper than isfinite().all() and is non-finite whenever any element
    # is; only then (or on overflow of huge finite values) is the exact check paid for.
    if vectors.numel() == 0 or bool(torch.isfinite(torch.sum(vectors))):
        return
    bad = (~torch.isfinite(vectors)).nonzero()
    if bad.numel() == 0:
        return
    first = bad[0].tolist()
    if per_item is None:
        where = f"{item} {first[0] + offset}, vector {first[1]}"
    else:
        where = f"{item} {first[0] // per_item + offset}, vector {first[0] % per_item}"
    raise ValueError(
        f"maxsim: {name} contains NaN or inf within the budget (first at {where}); "
        "embeddings must be finite, check the encoder output"
    )


def _check_inputs(
    q: torch.Tensor,
    c: torch.Tensor,
    budget: Budget | None,
    q_mask: torch.Tensor | None,
    c_mask: torch.Tensor | None,
    chunk_size: int | None,
) -> Budget:
    for name, t, layout in (("q", q, "[B, R_q, D]"), ("c", c, "[N, R_c, D]")):
        if not isinstance(t, torch.Tensor) or t.dim() != 3:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"maxsim: {name} must be a 3-D tensor {layout}, got {shape}")
        if not t.dtype.is_floating_point:
            raise ValueError(f"maxsim: {name} must hold floating-point embeddings, got {t.dtype}")
    if q.dtype != c.dtype:
        raise ValueError(f"maxsim: q is {q.dtype} but c is {c.dtype}; cast one so both match")
    if q.device != c.device:
        raise ValueError(f"maxsim: q is on {q.device} but c is on {c.device}; move one of them")
    if q.shape[2] != c.shape[2]:
        raise ValueError(
            f"maxsim: embedding dim mismatch, q has D={q.shape[2]} but c has D={c.shape[2]}"
        )
    if q.shape[2] == 0:
        raise ValueError("maxsim: embedding dim D is 0; vectors need at least one component")
    r_q, r_c = _check_budget(budget, q.shape[1], c.shape[1])
    _check_mask(q_mask, "q_mask", q, "query", r_q)
    _check_mask(c_mask, "c_mask", c, "candidate", r_c)
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ValueError(f"maxsim: chunk_size must be a positive int or None, got {chunk_size!r}")
    return r_q, r_c


def _check_budget(budget: Budget | None, num_q_vectors: int, num_c_vectors: int) -> Budget:
    if budget is None:
        for name, count in (("q", num_q_vectors), ("c", num_c_vectors)):
            if count == 0:
                raise ValueError(f"maxsim: {name} holds 0 vectors per item (shape[1] == 0)")
        budget = (num_q_vectors, num_c_vectors)
    if (
        not isinstance(budget, (tuple, list))
        or len(budget) != 2
        or not all(isinstance(r, int) and not isinstance(r, bool) for r in budget)
    ):
        raise ValueError(
            f"maxsim: budget must be a pair of ints (r_q, r_c) or None, got {budget!r}"
        )
    for name, r, available, side in (
        ("r_q", budget[0], num_q_vectors, "query vectors in q (R_q"),
        ("r_c", budget[1], num_c_vectors, "candidate vectors in c (R_c"),
    ):
        if r < 1:
            raise ValueError(f"maxsim: budget {name}={r} must be >= 1")
        if r > available:
            raise ValueError(
                f"maxsim: budget {name}={r} exceeds the {available} {side}={available}); "
                f"use {name} <= {available}"
            )
    return budget[0], budget[1]


def _check_mask(
    mask: torch.Tensor | None, name: str, ref: torch.Tensor, item: str, r: int
) -> None:
    if mask is None:
        return
    expected = tuple(ref.shape[:2])
    is_tensor = isinstance(mask, torch.Tensor)
    if not is_tensor or mask.dtype != torch.bool or tuple(mask.shape) != expected:
        got = (mask.dtype, tuple(mask.shape)) if is_tensor else type(mask).__name__
        raise ValueError(f"maxsim: {name} must be a bool tensor of shape {expected}, got {got}")
    if mask.device != ref.device:
        raise ValueError(f"maxsim: {name} is on {mask.device} but the vectors are on {ref.device}")
    empty = (~mask[:, :r].any(dim=1)).nonzero().flatten()
    if empty.numel():
        shown = empty[:5].tolist()
        more = f" and {empty.numel() - 5} more" if empty.numel() > 5 else ""
        raise ValueError(
            f"maxsim: {item} {shown}{more} has no real vector among its first {r} ({name} is all "
            f"False there), so it has no score; drop it or use a larger budget"
        )
