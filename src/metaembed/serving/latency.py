"""Search time per query on a built index at one budget, exhaustive and two-stage, and the
two-stage search's recall@k against the exhaustive top-k.

Each query is searched alone (B = 1, online serving), `repeats` times in rounds over all queries,
and the median of every timing is kept. One batched exhaustive search runs first: it is the
reference top-k, and it reads every row the budget needs once, so the first timed search does
not pay for cold pages.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from metaembed.index import MultiVectorIndex

Search = Callable[[torch.Tensor, torch.Tensor], list[str]]


@dataclass(frozen=True)
class Timed:
    exhaustive_ms: float
    two_stage_ms: float | None  # None without a first stage
    recall_at_k: float | None


def time_budget(index: MultiVectorIndex, queries: torch.Tensor, mask: torch.Tensor, budget: tuple[int, int] | None,
                k: int, first_stage_k: int | None, repeats: int) -> Timed:
    """Median ms per single-query search at `budget` (None: every vector), and recall@k."""
    _, exact = index.search(queries, mask, budget, k=k)

    def exhaustive(q: torch.Tensor, m: torch.Tensor) -> list[str]:
        return index.search(q, m, budget, k=k)[1][0]

    exhaustive_ms, _ = _timed(exhaustive, queries, mask, repeats)
    if first_stage_k is None:
        return Timed(exhaustive_ms, None, None)

    def two_stage(q: torch.Tensor, m: torch.Tensor) -> list[str]:
        return index.search(q, m, budget, k=k, first_stage_k=first_stage_k)[1][0]

    two_stage_ms, found = _timed(two_stage, queries, mask, repeats)
    return Timed(exhaustive_ms, two_stage_ms, recall(exact, found))


def recall(exact: list[list[str]], found: list[list[str]]) -> float:
    """Mean over queries of the share of the exact top-k that `found` holds."""
    shares = [len(set(e) & set(f)) / len(e) for e, f in zip(exact, found) if e]
    return sum(shares) / len(shares) if shares else 1.0


def _timed(search: Search, queries: torch.Tensor, mask: torch.Tensor, repeats: int
           ) -> tuple[float, list[list[str]]]:
    """Median ms over every search, and the ids of the first round."""
    times, first = [], []
    for round_ in range(repeats):
        for i in range(len(queries)):
            began = time.perf_counter()
            ids = search(queries[i:i + 1], mask[i:i + 1])
            times.append(time.perf_counter() - began)
            if round_ == 0:
                first.append(ids)
    return 1e3 * statistics.median(times), first


@contextlib.contextmanager
def threads(count: int) -> Iterator[None]:
    """torch and faiss on `count` threads inside the block (both are process-wide settings)."""
    import faiss

    torch_before, faiss_before = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(count)
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(torch_before)
        faiss.omp_set_num_threads(faiss_before)


def machine() -> dict[str, str | int]:
    """What the timings depend on, beside the other processes' load."""
    return {"cores": os.cpu_count() or 0, "machine": platform.machine(),
            "processor": platform.processor() or "unknown", "torch": torch.__version__}
