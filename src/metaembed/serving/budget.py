"""Retrieval budgets as people type them: "4x8" on a command line, "4x8" or [4, 8] in a request."""

from __future__ import annotations

import re
from typing import Any

Budget = tuple[int, int]
_TEXT = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


class BudgetError(ValueError):
    """A budget that cannot be read or is outside what the model and index hold."""


def parse_budget(value: Any) -> Budget:
    """(r_q, r_c) from "RQxRC" or a pair of ints; both at least 1."""
    if isinstance(value, str):
        match = _TEXT.match(value)
        if match is None:
            raise BudgetError(f"budget {value!r} is not RQxRC: write the query and candidate vector counts "
                              "as two whole numbers joined by x, e.g. 4x8")
        budget = int(match.group(1)), int(match.group(2))
    elif (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(r, int) and not isinstance(r, bool) for r in value)):
        budget = int(value[0]), int(value[1])
    else:
        raise BudgetError(f"budget {value!r} must be \"RQxRC\" (e.g. \"4x8\") or a pair of ints [r_q, r_c]")
    if min(budget) < 1:
        raise BudgetError(f"budget {format_budget(budget)}: r_q and r_c must both be at least 1")
    return budget


def check_budget(budget: Budget, max_query: int, max_candidate: int) -> Budget:
    """The budget, if 1 <= r_q <= the model's query vectors and 1 <= r_c <= the index's vectors."""
    r_q, r_c = budget
    if not (1 <= r_q <= max_query and 1 <= r_c <= max_candidate):
        raise BudgetError(f"budget {format_budget(budget)} is out of range: r_q must be in 1..{max_query} (the "
                          f"model's query vectors) and r_c in 1..{max_candidate} (the index's candidate vectors)")
    return budget


def format_budget(budget: Budget) -> str:
    return f"{budget[0]}x{budget[1]}"
