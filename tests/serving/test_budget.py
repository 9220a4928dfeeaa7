from __future__ import annotations

import pytest

from metaembed.serving.budget import BudgetError, check_budget, format_budget, parse_budget


@pytest.mark.parametrize("value", ["4x8", " 4 X 8 ", [4, 8], (4, 8)])
def test_a_budget_reads_from_text_or_a_pair(value):
    assert parse_budget(value) == (4, 8)
    assert format_budget(parse_budget(value)) == "4x8"


@pytest.mark.parametrize("value, message", [
    ("4by8", "is not RQxRC"), ("4x", "is not RQxRC"), ("-1x8", "is not RQxRC"), ("4.5x8", "is not RQxRC"),
    ("0x8", "at least 1"), ([4, 0], "at least 1"), ([4], "pair of ints"), ([4, "8"], "pair of ints"),
    ([True, 8], "pair of ints"), (48, "pair of ints"),
])
def test_a_bad_budget_says_what_to_write(value, message):
    with pytest.raises(BudgetError, match=message):
        parse_budget(value)


def test_an_out_of_range_budget_names_both_ranges():
    assert check_budget((4, 8), 4, 8) == (4, 8)
    with pytest.raises(BudgetError, match=r"5x8 is out of range: r_q must be in 1\.\.4 .* r_c in 1\.\.8"):
        check_budget((5, 8), 4, 8)
    with pytest.raises(BudgetError, match="out of range"):
        check_budget((1, 9), 4, 8)
