from __future__ import annotations

import pytest

from metaembed.evaluation.pareto import pareto_mask


def test_dominated_budgets_are_off_the_frontier():
    # (1,1) cheap, (2,4) better, (4,8) worse than (2,4) at more cost, (16,64) best.
    quality = [0.30, 0.40, 0.35, 0.50]
    costs = [(1, 1), (4, 8), (8, 32), (64, 1024)]
    assert pareto_mask(quality, costs) == [True, True, False, True]


def test_equal_quality_at_higher_cost_is_dominated_and_identical_points_both_stay():
    assert pareto_mask([0.5, 0.5], [(1, 1), (2, 1)]) == [True, False]
    assert pareto_mask([0.5, 0.5], [(1, 1), (1, 1)]) == [True, True]


def test_a_trade_between_two_costs_keeps_both_and_missing_quality_is_never_on_it():
    assert pareto_mask([0.5, 0.5], [(1, 2), (2, 1)]) == [True, True]
    assert pareto_mask([None, 0.1], [(1, 1), (2, 2)]) == [False, True]
    with pytest.raises(ValueError, match="2 qualities but 1 cost rows"):
        pareto_mask([0.1, 0.2], [(1, 1)])
