"""Encoding rate at a budget: inputs per second through the whole path (image decoding, the
processor, the backbone). A smaller meta budget appends fewer meta tokens, so it is cheaper too:
a query runs with its r_q meta tokens, a candidate with all R_q query meta tokens (causal
attention: its own meta tokens attend to them) plus its r_c."""

from __future__ import annotations

import time

import torch

from metaembed.data.records import Side
from metaembed.training.collator import side_inputs


def sample(items: dict[str, Side], count: int) -> list[Side]:
    """`count` items spread evenly over `items` (which is ordered by set, so all sets show up)."""
    values = list(items.values())
    if len(values) <= count:
        return values
    step = len(values) / count
    return [values[int(i * step)] for i in range(count)]


def encode_rate(model, side: str, items: list[Side], budget: int | None, batch_size: int) -> float:
    """Items per second, after one untimed warm-up batch."""
    if not items:
        raise ValueError(f"no {side} inputs to time")
    batches = [side_inputs(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]
    with torch.inference_mode():
        model.encode(side, *side_inputs(items[: min(len(items), 8)]), budget=budget)
        started = time.perf_counter()
        for texts, images in batches:
            model.encode(side, texts, images, budget=budget)
        elapsed = time.perf_counter() - started
    return len(items) / elapsed
