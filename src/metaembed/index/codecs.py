"""How the rerank vectors are stored: one codec per storage dtype, encode on build, decode per block.

    float32   the vectors as given (4 bytes per component)
    bfloat16  rounded to bfloat16 (round to nearest even), kept as its raw 16 bits: numpy has no
              bfloat16, so the .npy holds uint16 and torch reinterprets it
    int8      symmetric per vector: s = max|v|, q = round(v / s * 127), decoded as q * s / 127;
              the scales are a separate float32 [N, R_c] array (4 more bytes per vector)
    binary    the sign bits (v >= 0 -> 1) packed 8 per byte with numpy.packbits

Binary scores are the dot product of the +-1 codes divided by D: both sides are binarised (the
query at search time), which makes each decoded vector unit-length (+-1/sqrt(D) per component),
so a similarity is in [-1, 1] like a cosine (1 - 2 * hamming / D) and budgets stay comparable.

Decoding returns float32 torch tensors of one block at a time: the index is never materialised
as float32 as a whole.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from metaembed.index.sizes import INDEX_DTYPES as DTYPES

# The numpy dtype of the stored codes per storage dtype.
CODE_DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype(np.float32),
    "bfloat16": np.dtype(np.uint16),
    "int8": np.dtype(np.int8),
    "binary": np.dtype(np.uint8),
}


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise ValueError(f"unknown index dtype {dtype!r}; supported: {', '.join(DTYPES)}")
    return dtype


def code_width(dtype: str, dim: int) -> int:
    """Stored components per vector: D, or D/8 rounded up for packed bits."""
    return math.ceil(dim / 8) if dtype == "binary" else dim


def has_scales(dtype: str) -> bool:
    return dtype == "int8"


def encode(dtype: str, vectors: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
    """Codes [n, R, width] and, for int8, scales [n, R] float32, of float32 vectors [n, R, D]."""
    if dtype == "float32":
        return vectors.numpy().copy(), None
    if dtype == "bfloat16":
        return vectors.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16), None
    if dtype == "int8":
        scales = vectors.abs().amax(dim=-1)
        # A zero vector (padding) has scale 0: divide by 1 instead, its codes are 0 either way.
        safe = torch.where(scales > 0, scales, torch.ones_like(scales))
        codes = torch.round(vectors / safe[..., None] * 127).to(torch.int8)
        return codes.numpy(), scales.numpy()
    return np.packbits(vectors.numpy() >= 0, axis=-1), None


def decode(dtype: str, codes: np.ndarray, scales: np.ndarray | None, dim: int) -> torch.Tensor:
    """Float32 vectors [n, R, D] of a block of codes; `codes` must be writable (no copy is made
    for float32, and torch refuses read-only numpy memory)."""
    if dtype == "float32":
        return torch.from_numpy(codes)
    if dtype == "bfloat16":
        return torch.from_numpy(codes.view(np.int16)).view(torch.bfloat16).float()
    if dtype == "int8":
        return torch.from_numpy(codes).float() * torch.from_numpy(scales / 127)[..., None]
    bits = np.unpackbits(codes, axis=-1, count=dim)
    return torch.from_numpy(bits).float().mul_(2 / math.sqrt(dim)).sub_(1 / math.sqrt(dim))


def prepare_queries(dtype: str, queries: torch.Tensor) -> torch.Tensor:
    """The query vectors scored against decoded codes: binarised for the binary dtype."""
    if dtype != "binary":
        return queries
    unit = 1 / math.sqrt(queries.shape[-1])
    return torch.where(queries >= 0, unit, -unit).to(queries.dtype)
