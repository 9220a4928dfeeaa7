"""Independent random streams per item: a row's content depends on (seed, part, name, row) only.

So generating a subset with more rows keeps its first rows, and no item depends on how many
random numbers another item drew.
"""

from __future__ import annotations

import zlib

import numpy as np


def item_rng(seed: int, *parts: str | int) -> np.random.Generator:
    """A generator seeded by `seed` and the parts (strings hashed with crc32, which is portable)."""
    words = [seed] + [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) for p in parts]
    return np.random.default_rng(words)
