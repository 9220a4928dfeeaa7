"""Matryoshka Multi-Vector Retrieval (MMR) loss: InfoNCE at several nested retrieval budgets.

One forward pass encodes every query with R_q vectors and every candidate with R_c vectors. The
loss scores the same embeddings at each budget (r_q, r_c) of ``groups`` by keeping the first r_q
query and first r_c candidate vectors, so that every prefix is a usable retriever on its own.

Conventions (PAPER.md "Late interaction with a budget" and "MMR loss"; choices it leaves open
are named here):

* Score: s(q, c) = sum over the first r_q query vectors of the max over the first r_c candidate
  vectors of the dot product; no division by r_q (the paper) unless ``scale_by_query_vectors``,
  which divides each group's scores by its r_q so that small and large budgets are equally sharp
  at one temperature (an option to measure, LEARNABILITY.md; it equals using tau * r_q).
* Masks (bool, True = real vector): a masked candidate vector never wins a max; a masked query
  vector contributes 0. A query vector facing a candidate with no real vector inside the budget
  also contributes 0 (the max over an empty set is taken as 0, so the loss stays finite).
  A hard negative whose mask is all False is absent: batches where only some queries have a
  hard negative pass zeros with a False mask for the others, and those logits are dropped.
* Total = (1/G) * sum_g w_g * L_g: the paper writes the plain sum, the authors' code divides by
  the number of groups G, and so do we (it keeps the loss scale independent of G).
* Distributed: positives (and their masks) are gathered from every rank with gradients, queries
  and hard negatives stay local, and each rank returns the mean over its *local* queries. Because
  the gather's backward sums the positives' gradients over ranks, DDP's average of the per-rank
  gradients is exactly the gradient of the single-process loss on the global batch, and the mean
  of the per-rank losses is that loss. So: no extra scaling, and DDP / FSDP's default gradient
  averaging must stay on. Local batch sizes must be equal on every rank (checked with one tiny
  all_gather that also makes every rank raise together when any rank's inputs are invalid), and
  every rank must call the loss, as with any collective.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

Group = tuple[int, int, float]

DEFAULT_GROUPS: tuple[Group, ...] = ((1, 1, 1.0), (2, 4, 1.0), (4, 8, 1.0), (8, 16, 1.0), (16, 64, 1.0))

_ORDER_HINT = (
    "list groups from the smallest budget to the largest, each (r_q, r_c) containing the previous "
    "one (r_q and r_c never decrease, no group repeated), e.g. (1,1) (2,4) (4,8) (8,16) (16,64)"
)


class MMRLossOutput(NamedTuple):
    """Result of :class:`MatryoshkaMultiVectorLoss`.

    ``loss``: the scalar to back-propagate. ``group_losses``: a 1-D tensor with one *unweighted*
    InfoNCE value L_g per group, detached (it is for logging only). ``groups``: the validated
    (r_q, r_c, weight) groups, in the order of ``group_losses``. Under torch.distributed both
    ``loss`` and ``group_losses`` are means over the rank's local queries; their mean over ranks
    is the global-batch value (log with a cross-rank mean, e.g. Lightning's ``sync_dist=True``).
    """

    loss: Tensor
    group_losses: Tensor
    groups: tuple[Group, ...]

    def by_group(self) -> dict[str, float]:
        """Group losses keyed ``"{r_q}x{r_c}"``, ready for a metrics logger."""
        return {f"{r_q}x{r_c}": value for (r_q, r_c, _), value in zip(self.groups, self.group_losses.tolist())}


def _is_int(value: object) -> bool:
    # bool is an int subclass, but True as a vector count is always a mistake.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_vector_count(name: str, value: object) -> int:
    if not _is_int(value) or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def validate_groups(
    groups: Sequence[Sequence[float]], num_query_vectors: int, num_candidate_vectors: int
) -> list[Group]:
    """Check MMR groups and return them as ``[(r_q, r_c, weight), ...]`` with plain Python types.

    Each group is ``(r_q, r_c, weight)`` or ``(r_q, r_c)`` (weight 1.0). Groups must be nested
    prefixes (r_q and r_c non-decreasing, no duplicates), fit within the encoded vector counts,
    and carry positive finite weights. Raises ``ValueError`` naming the offending group.
    """
    num_query_vectors = _check_vector_count("num_query_vectors", num_query_vectors)
    num_candidate_vectors = _check_vector_count("num_candidate_vectors", num_candidate_vectors)
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence) or len(groups) == 0:
        raise ValueError(f"groups must be a non-empty list of (r_q, r_c, weight) tuples, got {groups!r}")
    checked: list[Group] = []
    for index, group in enumerate(groups):
        checked.append(_validate_group(index, group, num_query_vectors, num_candidate_vectors))
    for index in range(1, len(checked)):
        (prev_q, prev_c, _), (r_q, r_c, _) = checked[index - 1], checked[index]
        if r_q < prev_q or r_c < prev_c:
            raise ValueError(
                f"group {index} ({r_q}, {r_c}) is not nested in the budget of group {index - 1} "
                f"({prev_q}, {prev_c}): {_ORDER_HINT}"
            )
        if (r_q, r_c) == (prev_q, prev_c):
            raise ValueError(f"group {index} ({r_q}, {r_c}) repeats group {index - 1}: {_ORDER_HINT}")
    return checked


def _validate_group(index: int, group: object, num_query_vectors: int, num_candidate_vectors: int) -> Group:
    if isinstance(group, (str, bytes)) or not isinstance(group, Sequence) or len(group) not in (2, 3):
        raise ValueError(f"group {index} must be (r_q, r_c) or (r_q, r_c, weight), got {group!r}")
    r_q, r_c = group[0], group[1]
    weight = group[2] if len(group) == 3 else 1.0
    if not (_is_int(r_q) and _is_int(r_c) and int(r_q) >= 1 and int(r_c) >= 1):
        raise ValueError(f"group {index} {tuple(group)!r}: r_q and r_c must be positive integers")
    if int(r_q) > num_query_vectors or int(r_c) > num_candidate_vectors:
        raise ValueError(
            f"group {index} ({r_q}, {r_c}) exceeds the encoded vectors ({num_query_vectors} query, "
            f"{num_candidate_vectors} candidate): lower the group or raise num_*_vectors to match the model"
        )
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight) or weight <= 0:
        raise ValueError(f"group {index} ({r_q}, {r_c}): weight must be a positive finite number, got {weight!r}")
    return int(r_q), int(r_c), float(weight)


class MatryoshkaMultiVectorLoss(nn.Module):
    """MMR loss over nested (r_q, r_c) budgets; see the module docstring for every convention.

    Call as ``loss(q, pos, neg=None, q_mask=None, pos_mask=None, neg_mask=None)`` with
    q ``[B, R_q, D]``, pos ``[B, R_c, D]`` (row u is the positive of query u), neg ``[B, R_c, D]``
    or ``[B, K, R_c, D]`` (each query's own hard negatives), and bool masks of the same shapes
    without D. Returns :class:`MMRLossOutput`.
    """

    def __init__(
        self,
        groups: Sequence[Sequence[float]] = DEFAULT_GROUPS,
        temperature: float = 0.03,
        num_query_vectors: int = 16,
        num_candidate_vectors: int = 64,
        scale_by_query_vectors: bool = False,
    ) -> None:
        super().__init__()
        self.groups: tuple[Group, ...] = tuple(validate_groups(groups, num_query_vectors, num_candidate_vectors))
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not (
            math.isfinite(temperature) and temperature > 0
        ):
            raise ValueError(f"temperature must be a positive finite number (paper: 0.03), got {temperature!r}")
        if not isinstance(scale_by_query_vectors, bool):
            raise ValueError(f"scale_by_query_vectors must be True or False, got {scale_by_query_vectors!r}")
        self.temperature = float(temperature)
        self.num_query_vectors = int(num_query_vectors)
        self.num_candidate_vectors = int(num_candidate_vectors)
        self.scale_by_query_vectors = scale_by_query_vectors

    def extra_repr(self) -> str:
        return (
            f"groups={list(self.groups)}, temperature={self.temperature}, "
            f"scale_by_query_vectors={self.scale_by_query_vectors}"
        )

    def forward(
        self,
        q: Tensor,
        pos: Tensor,
        neg: Tensor | None = None,
        q_mask: Tensor | None = None,
        pos_mask: Tensor | None = None,
        neg_mask: Tensor | None = None,
    ) -> MMRLossOutput:
        if isinstance(neg, Tensor) and neg.dim() == 3:
            # One hard negative per query is the paper's setting; treat it as K = 1.
            neg = neg.unsqueeze(1)
            neg_mask = neg_mask.unsqueeze(1) if isinstance(neg_mask, Tensor) and neg_mask.dim() == 2 else neg_mask
        error = self._input_error(q, pos, neg, q_mask, pos_mask, neg_mask)
        world_size, rank = _world()
        if world_size > 1:
            _agree_across_ranks(error, q, pos)
        elif error is not None:
            raise ValueError(error)

        batch = q.shape[0]
        q_mask = _real_vectors(q, q_mask)
        pos_all, pos_mask_all = pos, _real_vectors(pos, pos_mask)
        if world_size > 1:
            pos_all, pos_mask_all = _gather_positives(pos_all, pos_mask_all)
        sim_pos = _masked_similarities(torch.einsum("bid,mjd->bmij", q, pos_all), pos_mask_all.unsqueeze(0))
        sim_neg = None
        if neg is not None:
            neg_mask = _real_vectors(neg, neg_mask)
            sim_neg = _masked_similarities(torch.einsum("bid,bkjd->bkij", q, neg), neg_mask)
        targets = torch.arange(batch, device=q.device) + rank * batch

        group_losses = []
        for r_q, r_c, _ in self.groups:
            logits = _budget_scores(sim_pos, q_mask, pos_mask_all.unsqueeze(0), r_q, r_c)
            if sim_neg is not None:
                negative_logits = _budget_scores(sim_neg, q_mask, neg_mask, r_q, r_c)
                # A hard negative with no real vector at all is absent (its query has none): drop it.
                negative_logits = negative_logits.masked_fill(~neg_mask.any(dim=-1), float("-inf"))
                logits = torch.cat([logits, negative_logits], dim=1)
            # bf16/fp16 logits divided by 0.03 lose too much precision for a softmax.
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
            scale = self.temperature * (r_q if self.scale_by_query_vectors else 1)
            group_losses.append(F.cross_entropy(logits / scale, targets))
        stacked = torch.stack(group_losses)
        weights = stacked.new_tensor([w for _, _, w in self.groups])
        loss = (weights * stacked).sum() / len(self.groups)
        return MMRLossOutput(loss=loss, group_losses=stacked.detach(), groups=self.groups)

    def _input_error(
        self,
        q: Tensor,
        pos: Tensor,
        neg: Tensor | None,
        q_mask: Tensor | None,
        pos_mask: Tensor | None,
        neg_mask: Tensor | None,
    ) -> str | None:
        """Describe the first problem with the inputs, or None. Returns instead of raising so that
        distributed ranks can agree to fail together rather than leave the others in a gather."""
        return (
            self._shape_error(q, pos, neg)
            or _mask_error((("q_mask", q_mask, q), ("pos_mask", pos_mask, pos), ("neg_mask", neg_mask, neg)))
            or _finite_error((("q", q), ("pos", pos), ("neg", neg)))
        )

    def _shape_error(self, q: Tensor, pos: Tensor, neg: Tensor | None) -> str | None:
        for name, tensor in (("q", q), ("pos", pos), ("neg", neg)):
            if tensor is not None and not isinstance(tensor, Tensor):
                return f"{name} must be a torch.Tensor, got {type(tensor).__name__}"
        if q.dim() != 3 or q.shape[1] != self.num_query_vectors:
            return f"q must be [B, {self.num_query_vectors}, D] (num_query_vectors), got {list(q.shape)}"
        if q.shape[0] == 0:
            return "empty batch (B = 0): the loss needs at least one query per rank; skip empty batches upstream"
        expected = [q.shape[0], self.num_candidate_vectors, q.shape[2]]
        if list(pos.shape) != expected:
            return f"pos must be [B, R_c, D] = {expected} to match q {list(q.shape)}, got {list(pos.shape)}"
        if neg is not None and (neg.dim() != 4 or [neg.shape[0], *neg.shape[2:]] != expected):
            return f"neg must be [B, R_c, D] or [B, K, R_c, D] with B, R_c, D = {expected}, got {list(neg.shape)}"
        for name, tensor in (("pos", pos), ("neg", neg)):
            if tensor is not None and tensor.dtype != q.dtype:
                return f"{name} has dtype {tensor.dtype} but q has {q.dtype}: cast the embeddings to one dtype"
        return None


def _mask_error(entries: Sequence[tuple[str, Tensor | None, Tensor | None]]) -> str | None:
    for name, mask, tensor in entries:
        if mask is None:
            continue
        if tensor is None:
            return f"{name} was given without its embeddings: pass them too, or drop the mask"
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != tensor.shape[:-1]:
            got = f"{mask.dtype} {list(mask.shape)}" if isinstance(mask, Tensor) else type(mask).__name__
            return f"{name} must be a bool tensor of shape {list(tensor.shape[:-1])} (True = real vector), got {got}"
        if mask.device != tensor.device:
            return f"{name} is on {mask.device} but its embeddings are on {tensor.device}: move them together"
    return None


def _finite_error(entries: Sequence[tuple[str, Tensor | None]]) -> str | None:
    present = [(name, tensor) for name, tensor in entries if tensor is not None]
    finite = torch.stack([torch.isfinite(tensor).all() for _, tensor in present])
    if bool(finite.all()):  # the one host sync of the check, whatever the number of inputs
        return None
    name = next(name for (name, _), ok in zip(present, finite.tolist()) if not ok)
    return f"{name} contains NaN or inf: the encoder diverged or the inputs are corrupt"


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _agree_across_ranks(error: str | None, q: Tensor, pos: Tensor) -> None:
    """One small all_gather so that every rank raises together (none hangs in the positives'
    gather) and equal local shapes are confirmed before positives are gathered."""
    ok = error is None
    row = [int(ok), *(pos.shape if ok else (0, 0, 0))]
    local = torch.tensor(row, dtype=torch.int64, device=q.device)
    rows = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(rows, local)
    table = [r.tolist() for r in rows]
    if error is not None:
        raise ValueError(error)
    bad = [rank for rank, r in enumerate(table) if not r[0]]
    if bad:
        raise ValueError(f"MMR loss: rank(s) {bad} received invalid inputs (see their error); all ranks stop together")
    shapes = [tuple(r[1:]) for r in table]
    if len(set(shapes)) > 1:
        raise ValueError(
            f"MMR loss: per-rank positives [B, R_c, D] differ across ranks {shapes}; every rank must hold the "
            "same local batch size (use drop_last=True / equal per-device batch sizes)"
        )


def _gather_positives(pos: Tensor, pos_mask: Tensor) -> tuple[Tensor, Tensor]:
    """All ranks' positives in rank order; gradients flow back to their owner rank (summed)."""
    masks = [torch.empty_like(pos_mask, dtype=torch.uint8) for _ in range(dist.get_world_size())]
    # Masks need no gradient; uint8 because not every backend gathers bool tensors.
    dist.all_gather(masks, pos_mask.to(torch.uint8))
    return _GatherWithGrad.apply(pos), torch.cat(masks, dim=0).bool()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0 whose backward gives each rank the sum over ranks of the gradient
    of its own rows.

    Written here instead of using torch.distributed.nn.functional.all_gather, which is
    deprecated and, with gloo in torch 2.13, returns the gradient with its elements scrambled
    when the incoming gradient is non-contiguous, as einsum's is (its backward scatters into
    non-contiguous buffers; gloo scatter mishandles those, pytorch/pytorch#192920).
    tests/test_losses_distributed.py caught it. all_reduce moves the whole gathered gradient (reduce_scatter would move 1/W of
    it) but works on every backend; positives' embeddings are small next to the model.
    """

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:  # type: ignore[override]
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor)
        ctx.rows = tensor.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        # A fresh contiguous buffer: all_reduce works in place and must not touch autograd's grad.
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = dist.get_rank() * ctx.rows
        return grad[start : start + ctx.rows]


def _real_vectors(tensor: Tensor, mask: Tensor | None) -> Tensor:
    return mask if mask is not None else torch.ones(tensor.shape[:-1], dtype=torch.bool, device=tensor.device)


def _masked_similarities(sim: Tensor, c_mask: Tensor) -> Tensor:
    """sim [b, N, R_q, R_c] with masked candidate vectors set to -inf so they never win a max."""
    return sim.masked_fill(~c_mask.unsqueeze(-2), float("-inf"))


def _budget_scores(sim: Tensor, q_mask: Tensor, c_mask: Tensor, r_q: int, r_c: int) -> Tensor:
    """Late-interaction scores [B, N] at budget (r_q, r_c) from masked similarities
    sim [B, N, R_q, R_c]; c_mask [B or 1, N, R_c], q_mask [B, R_q]."""
    best = sim[..., :r_q, :r_c].amax(dim=-1)
    # All candidate vectors of the prefix masked: best is -inf; count it as no evidence (0).
    best = best.masked_fill(~c_mask[..., :r_c].any(dim=-1).unsqueeze(-1), 0.0)
    best = best.masked_fill(~q_mask[:, None, :r_q], 0.0)
    return best.sum(dim=-1)
