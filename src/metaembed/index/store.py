"""The rerank vectors: coded rows kept as numpy arrays (memory-mapped once loaded), decoded one
block at a time.

Rows live in segments: the arrays built or loaded, then in-memory segments that `add` grows.
A memory-mapped segment is never copied to grow it, and an in-memory one grows only up to
SEGMENT_BYTES before a new one starts, so adding n rows copies O(n) bytes however large the index
(growing one array would copy the whole tail on every add: quadratic when a 1M-row index is built
in chunks, and twice its size in memory at the end). `save` writes all segments as one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from metaembed.index import codecs

# An in-memory segment stops growing at this size; a new one starts (see the module docstring).
SEGMENT_BYTES = 256 * 2**20


@dataclass
class Segment:
    start: int  # row number of codes[0]
    codes: np.ndarray  # [n, R_c, width] codecs.CODE_DTYPES[dtype]
    scales: np.ndarray | None  # [n, R_c] float32, int8 only
    mask: np.ndarray  # [n, R_c] bool, True where the vector is real
    mapped: bool  # backed by a file: never grown in place

    @property
    def stop(self) -> int:
        return self.start + self.codes.shape[0]


@dataclass
class Block:
    rows: torch.Tensor  # [n] int64, ascending
    vectors: torch.Tensor  # [n, r_c, D] float32
    mask: torch.Tensor | None  # [n, r_c] bool, None when every vector is real


class VectorStore:
    def __init__(self, dtype: str, dim: int, num_vectors: int, segments: list[Segment]) -> None:
        self.dtype = dtype
        self.dim = dim
        self.num_vectors = num_vectors
        self.segments = segments

    @property
    def num_rows(self) -> int:
        return self.segments[-1].stop if self.segments else 0

    def append(self, codes: np.ndarray, scales: np.ndarray | None, mask: np.ndarray) -> None:
        last = self.segments[-1] if self.segments else None
        if last is None or last.mapped or last.codes.nbytes + codes.nbytes > SEGMENT_BYTES:
            self.segments.append(Segment(self.num_rows, codes, scales, mask, mapped=False))
            return
        # Small adds merge into the tail, so many one-row adds do not make many tiny segments.
        last.codes = np.concatenate([last.codes, codes])
        last.scales = None if scales is None else np.concatenate([last.scales, scales])
        last.mask = np.concatenate([last.mask, mask])

    def blocks(self, r_c: int, block_rows: int) -> Iterator[Block]:
        """Every row, in order, decoded at most `block_rows` rows at a time."""
        for segment in self.segments:
            for n0 in range(0, segment.stop - segment.start, block_rows):
                local = slice(n0, n0 + block_rows)
                rows = torch.arange(segment.start + n0, min(segment.start + n0 + block_rows, segment.stop))
                yield self._decode(segment, local, rows, r_c)

    def gather(self, rows: np.ndarray, r_c: int, block_rows: int) -> Iterator[Block]:
        """The given rows (ascending, unique), decoded at most `block_rows` rows at a time."""
        for segment in self.segments:
            lo, hi = np.searchsorted(rows, [segment.start, segment.stop])
            for b0 in range(lo, hi, block_rows):
                chosen = rows[b0:min(b0 + block_rows, hi)]
                yield self._decode(segment, chosen - segment.start, torch.from_numpy(chosen), r_c)

    def _decode(self, segment: Segment, local: slice | np.ndarray, rows: torch.Tensor, r_c: int) -> Block:
        # Only the first r_c vectors of each row are read: the budget's prefix.
        codes = segment.codes[local, :r_c]
        scales = None if segment.scales is None else segment.scales[local, :r_c]
        mask = segment.mask[local, :r_c]
        vectors = codecs.decode(self.dtype, codes, scales, self.dim)
        return Block(rows, vectors, None if mask.all() else torch.from_numpy(np.ascontiguousarray(mask)))
