from __future__ import annotations

import pytest
import torch

from metaembed.metrics import precision_at_1


def test_constant_scores_give_chance_not_100_percent():
    scores = torch.zeros(50, 100)
    assert precision_at_1(scores, 0).mean().item() == pytest.approx(0.01)


def test_strict_winner_and_partial_ties():
    scores = torch.tensor([[3.0, 1.0, 2.0], [1.0, 3.0, 2.0], [3.0, 3.0, 0.0]])
    assert precision_at_1(scores, 0).tolist() == [1.0, 0.0, 0.5]
    assert precision_at_1(scores, torch.tensor([0, 1, 1])).tolist() == [1.0, 1.0, 0.5]


def test_non_finite_scores_are_refused():
    with pytest.raises(ValueError, match="NaN or inf"):
        precision_at_1(torch.tensor([[float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="at least one candidate"):
        precision_at_1(torch.zeros(2, 0))
