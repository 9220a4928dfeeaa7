"""The cost model reproduces PAPER.md's cost table (D=3584, bf16, N=100,000)."""

from __future__ import annotations

import pytest
import torch

from metaembed.costs import GIB, BudgetCost, budget_cost, bytes_per_element

PAPER_N, PAPER_D = 100_000, 3584
# budget: (GFLOPs per query, index GiB) as printed in the paper's table.
PAPER_TABLE = {(1, 1): (0.71, 0.68), (8, 16): (91.75, 10.68), (16, 64): (733.89, 42.72)}
# The table's figures are off by up to 1.3 units of their last decimal (see costs.py).
PRINT_TOLERANCE = 0.015


@pytest.mark.parametrize("budget", list(PAPER_TABLE))
def test_reproduces_paper_cost_table(budget: tuple[int, int]) -> None:
    gflops, gib = PAPER_TABLE[budget]
    cost = budget_cost(budget, PAPER_D, "bfloat16")
    assert cost.gflops_per_query(PAPER_N) == pytest.approx(gflops, abs=PRINT_TOLERANCE)
    assert cost.index_gib(PAPER_N) == pytest.approx(gib, abs=PRINT_TOLERANCE)


def test_exact_formulas() -> None:
    cost = budget_cost((16, 64), PAPER_D)
    assert cost == BudgetCost(budget=(16, 64), dim=PAPER_D, dtype="bfloat16",
                              flops_per_pair=16 * 64 * 7167, index_bytes_per_candidate=64 * 3584 * 2)
    assert cost.flops_per_query(PAPER_N) == 733_900_800_000
    assert cost.index_bytes(PAPER_N) == 45_875_200_000
    assert cost.matmul_flops_per_pair == 16 * 64 * 2 * 3584
    assert budget_cost((8, 16), 128, "float32").index_bytes_per_candidate == 16 * 128 * 4
    assert budget_cost((1, 2), 128, "int8").index_bytes(10) == 2 * 128 * 10


def test_table_is_in_binary_gib_not_decimal_gb() -> None:
    for budget, (_, gib) in PAPER_TABLE.items():
        index_bytes = budget_cost(budget, PAPER_D).index_bytes(PAPER_N)
        assert abs(index_bytes / GIB - gib) <= PRINT_TOLERANCE
    # Decimal GB miss the (16, 64) entry by more than 3 GB.
    assert abs(budget_cost((16, 64), PAPER_D).index_bytes(PAPER_N) / 1e9 - 42.72) > 3


def test_costs_scale_linearly_with_budget_and_candidates() -> None:
    small, big = budget_cost((2, 4), 64), budget_cost((4, 16), 64)
    assert big.flops_per_pair == 8 * small.flops_per_pair
    assert big.index_bytes_per_candidate == 4 * small.index_bytes_per_candidate
    assert small.flops_per_query(3000) == 3 * small.flops_per_query(1000)
    assert small.index_bytes(0) == 0


@pytest.mark.parametrize("dtype, size", [("float32", 4), ("bfloat16", 2), ("float16", 2), ("int8", 1),
                                         (torch.float32, 4), (torch.bfloat16, 2)])
def test_bytes_per_element(dtype, size: int) -> None:
    assert bytes_per_element(dtype) == size
    assert budget_cost((1, 3), 10, dtype).index_bytes_per_candidate == 3 * 10 * size


def test_torch_dtype_is_recorded_by_name() -> None:
    assert budget_cost((1, 1), 8, torch.float16).dtype == "float16"


@pytest.mark.parametrize("dtype", ["float8", "fp32", torch.int64])
def test_unknown_dtype_lists_supported_ones(dtype) -> None:
    message = r"unknown index dtype .*; supported: float32, bfloat16, float16, int8"
    with pytest.raises(ValueError, match=message):
        budget_cost((1, 1), 128, dtype)


@pytest.mark.parametrize(
    "args, match",
    [
        (((0, 1), 128), r"budget must be a pair \(r_q, r_c\) of ints >= 1, got \(0, 1\)"),
        (((1, 2, 3), 128), r"budget must be a pair"),
        (((1.5, 2), 128), r"budget must be a pair"),
        (((1, 1), 0), r"dim must be an int >= 1, got 0"),
        (((1, 1), 12.0), r"dim must be an int >= 1"),
    ],
)
def test_invalid_budget_or_dim(args, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        budget_cost(*args)


def test_negative_candidate_count_is_refused() -> None:
    cost = budget_cost((1, 1), 8)
    with pytest.raises(ValueError, match=r"num_candidates must be an int >= 0, got -1"):
        cost.gflops_per_query(-1)
    with pytest.raises(ValueError, match=r"num_candidates must be an int >= 0"):
        cost.index_gib(2.5)
