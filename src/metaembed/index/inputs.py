"""Checks of what callers hand the index, each failing with a message that says what to fix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

Budget = tuple[int, int]


def as_vectors(values: Any, name: str, layout: str) -> torch.Tensor:
    """A 3-D floating-point torch tensor (no copy when one is given); numpy arrays are wrapped."""
    if isinstance(values, np.ndarray):
        values = torch.from_numpy(values)
    if not isinstance(values, torch.Tensor) or values.dim() != 3:
        shape = tuple(values.shape) if hasattr(values, "shape") else type(values).__name__
        raise ValueError(f"{name} must be a 3-D float tensor or array {layout}, got {shape}")
    if not values.dtype.is_floating_point:
        raise ValueError(f"{name} must hold floating-point vectors, got {values.dtype}")
    if values.device.type != "cpu":
        raise ValueError(f"{name} is on {values.device}; the index is on the CPU, call .cpu() first")
    return values


def as_mask(mask: Any, name: str, shape: tuple[int, int], layout: str) -> torch.Tensor:
    """A bool [rows, vectors] tensor of exactly `shape`; None means every vector is real."""
    if mask is None:
        return torch.ones(shape, dtype=torch.bool)
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(mask)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"{name} must be a bool tensor or array {layout}, got {got}")
    if tuple(mask.shape) != shape:
        raise ValueError(
            f"{name} has shape {tuple(mask.shape)} but the vectors need {layout} = {shape}"
        )
    return mask.cpu()


def check_ids(ids: Any, count: int, taken: dict[str, int] | None = None) -> list[str]:
    """`count` unique str ids, none of them already in `taken` (the live ids)."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise TypeError(f"ids must be a list of str, got {type(ids).__name__}")
    if len(ids) != count:
        raise ValueError(f"got {len(ids)} ids for {count} embeddings; give one id per row")
    seen: set[str] = set()
    for position, item in enumerate(ids):
        if not isinstance(item, str):
            raise TypeError(f"ids[{position}] is {type(item).__name__} {item!r}; ids must be str")
        if item in seen:
            raise ValueError(f"duplicate id {item!r} (ids[{position}]); ids must be unique")
        if taken is not None and item in taken:
            raise ValueError(
                f"id {item!r} (ids[{position}]) is already in the index; remove it first to replace it"
            )
        seen.add(item)
    return list(ids)


def check_first_vectors_real(mask: torch.Tensor, ids: Sequence[str], name: str) -> None:
    """The first vector is what the first stage indexes and what keeps every budget scorable."""
    bad = (~mask[:, 0]).nonzero().flatten()
    if bad.numel():
        row = int(bad[0])
        raise ValueError(
            f"{name}: the first vector of {ids[row]!r} (row {row}) is masked; real vectors must come "
            f"first (pad at the end) and every item needs at least one"
        )


def check_finite(vectors: torch.Tensor, start: int, ids: Sequence[str], name: str) -> None:
    """NaN/inf would poison every max they enter: refuse them at the door, naming the item."""
    if bool(torch.isfinite(vectors.sum())):
        return
    bad = (~torch.isfinite(vectors)).flatten(1).any(dim=1).nonzero().flatten()
    if bad.numel():
        row = start + int(bad[0])
        raise ValueError(f"{name}: {ids[row]!r} (row {row}) holds NaN or inf; check the encoder output")


def check_meta(meta: Any) -> dict[str, str]:
    if meta is None:
        return {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise ValueError(
            "meta must be a dict of str to str (e.g. model version, model sha256, data hash), "
            f"got {meta!r}"
        )
    return dict(meta)


def check_budget(budget: Any, num_query_vectors: int, num_candidate_vectors: int) -> Budget:
    """1 <= r_q <= R_q (the queries') and 1 <= r_c <= R_c (the index's); None means (R_q, R_c)."""
    if budget is None:
        return num_query_vectors, num_candidate_vectors
    allowed = (
        f"r_q in 1..{num_query_vectors} (the queries' R_q) and r_c in 1..{num_candidate_vectors} "
        f"(the index's R_c)"
    )
    if (
        not isinstance(budget, (tuple, list))
        or len(budget) != 2
        or not all(isinstance(r, int) and not isinstance(r, bool) for r in budget)
    ):
        raise ValueError(f"budget must be a pair of ints (r_q, r_c) with {allowed}, got {budget!r}")
    r_q, r_c = budget
    if not (1 <= r_q <= num_query_vectors and 1 <= r_c <= num_candidate_vectors):
        raise ValueError(f"budget {tuple(budget)} is out of range: use {allowed}")
    return r_q, r_c


def check_positive(value: Any, name: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        kind = "an int >= 1 or None" if allow_none else "an int >= 1"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return value
