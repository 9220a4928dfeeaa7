"""Ranking metrics on score matrices, shared by validation during training and evaluation."""

from __future__ import annotations

import torch


def precision_at_1(scores: torch.Tensor, positive: torch.Tensor | int = 0) -> torch.Tensor:
    """Expected Precision@1 per query when ties at the top are broken uniformly at random.

    scores: [B, K] candidate scores per query; positive: the positive's column (per query or one
    for all; MMEB puts it at 0). argmax would hand every tie to column 0, so a model that returns
    one vector for everything would score 100% on MMEB; here it scores chance, 1/K.
    """
    if scores.dim() != 2 or scores.shape[1] == 0:
        raise ValueError(f"scores must be [queries, candidates] with at least one candidate, got {tuple(scores.shape)}")
    if not torch.isfinite(scores).all():
        raise ValueError("scores contain NaN or inf: refusing to rank them")
    positive = torch.as_tensor(positive, device=scores.device).expand(scores.shape[0])
    positive_score = scores.gather(1, positive.unsqueeze(1)).squeeze(1)
    top = scores.max(dim=1).values
    tied = (scores == top.unsqueeze(1)).sum(dim=1)
    return (positive_score == top).double() / tied.double()
