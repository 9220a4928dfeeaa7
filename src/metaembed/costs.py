"""Cost model of late-interaction scoring at a retrieval budget (PAPER.md, cost table).

    FLOPs per query-candidate pair   = r_q * r_c * (2D - 1)   (D multiplies + D - 1 adds per dot)
    index bytes per candidate        = r_c * D * bytes per element

Units: FLOPs are reported in GFLOPs (10**9) and index sizes in GiB (2**30 bytes). With D=3584,
bfloat16 and N=100,000 this reproduces the paper's table, whose figures are printed to two
decimals but are off by up to 1.3 units in the last decimal in either direction (0.7167 printed as
0.71, 91.7376 as 91.75, 0.6676 GiB as 0.68); decimal GB do not fit at all (45.9 GB against the
printed 42.72 for (16, 64)), so the table's "GiB" is binary.

The max over r_c and the sum over r_q add r_q * r_c - 1 operations per pair; like the paper we
leave them out. Benchmarks compare against a matmul rate, which counts a multiply-add as 2 FLOPs:
`matmul_flops_per_pair` (r_q * r_c * 2D) is the figure to use there.

This module imports nothing heavy so that the CLI can use it while building its parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BYTES_PER_ELEMENT: dict[str, int] = {"float32": 4, "bfloat16": 2, "float16": 2, "int8": 1}

GIB = 2**30


@dataclass(frozen=True)
class BudgetCost:
    budget: tuple[int, int]
    dim: int
    dtype: str
    flops_per_pair: int
    index_bytes_per_candidate: int

    @property
    def matmul_flops_per_pair(self) -> int:
        """r_q * r_c * 2D: the pair's work counted the way matmul throughput is counted."""
        r_q, r_c = self.budget
        return r_q * r_c * 2 * self.dim

    def flops_per_query(self, num_candidates: int) -> int:
        return self.flops_per_pair * _count(num_candidates)

    def gflops_per_query(self, num_candidates: int) -> float:
        return self.flops_per_query(num_candidates) / 1e9

    def index_bytes(self, num_candidates: int) -> int:
        return self.index_bytes_per_candidate * _count(num_candidates)

    def index_gib(self, num_candidates: int) -> float:
        return self.index_bytes(num_candidates) / GIB


def bytes_per_element(dtype: Any) -> int:
    """Bytes of one stored component; accepts a name ("bfloat16") or a torch dtype."""
    name = str(dtype).removeprefix("torch.")
    if name not in BYTES_PER_ELEMENT:
        raise ValueError(
            f"unknown index dtype {dtype!r}; supported: {', '.join(BYTES_PER_ELEMENT)}"
        )
    return BYTES_PER_ELEMENT[name]


def budget_cost(budget: tuple[int, int], dim: int, dtype: Any = "bfloat16") -> BudgetCost:
    """Scoring FLOPs and index bytes of one budget (r_q, r_c) for D-dimensional vectors."""
    if (
        not isinstance(budget, (tuple, list))
        or len(budget) != 2
        or not all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in budget)
    ):
        raise ValueError(f"budget must be a pair (r_q, r_c) of ints >= 1, got {budget!r}")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be an int >= 1, got {dim!r}")
    element = bytes_per_element(dtype)
    r_q, r_c = budget
    return BudgetCost(
        budget=(r_q, r_c),
        dim=dim,
        dtype=str(dtype).removeprefix("torch."),
        flops_per_pair=r_q * r_c * (2 * dim - 1),
        index_bytes_per_candidate=r_c * dim * element,
    )


def _count(num_candidates: int) -> int:
    is_int = isinstance(num_candidates, int) and not isinstance(num_candidates, bool)
    if not is_int or num_candidates < 0:
        raise ValueError(f"num_candidates must be an int >= 0, got {num_candidates!r}")
    return num_candidates
