"""Each storage dtype decodes to what it promises: exact, bf16-rounded, int8 within half a step,
or unit-length sign vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metaembed.index import codecs
from metaembed.index.synthetic import unit_vectors

D = 40  # not a multiple of 8: the packed bits need a padded last byte


def round_trip(dtype: str, vectors: torch.Tensor) -> torch.Tensor:
    codes, scales = codecs.encode(dtype, vectors)
    assert codes.dtype == codecs.CODE_DTYPES[dtype]
    assert codes.shape == (*vectors.shape[:2], codecs.code_width(dtype, vectors.shape[2]))
    return codecs.decode(dtype, codes, scales, vectors.shape[2])


def test_float32_is_exact_and_bfloat16_within_its_rounding() -> None:
    vectors = unit_vectors(5, 3, D, seed=0)
    assert torch.equal(round_trip("float32", vectors), vectors)
    decoded = round_trip("bfloat16", vectors)
    assert torch.equal(decoded, vectors.to(torch.bfloat16).float())
    assert float(((decoded - vectors).abs() / vectors.abs()).max()) <= 2**-8


def test_int8_is_within_half_a_step_of_each_vectors_own_scale() -> None:
    vectors = unit_vectors(5, 3, D, seed=1) * torch.tensor([1.0, 0.01, 3.0])[None, :, None]
    vectors[0, 0] = 0  # padding: scale 0 must not divide by zero
    decoded = round_trip("int8", vectors)
    step = vectors.abs().amax(dim=-1, keepdim=True) / 127
    assert bool(((decoded - vectors).abs() <= step / 2 + 1e-7).all())
    assert torch.equal(decoded[0, 0], torch.zeros(D))


def test_binary_keeps_signs_as_unit_vectors_and_scores_a_cosine_like_dot() -> None:
    vectors = unit_vectors(4, 2, D, seed=2)
    codes, _ = codecs.encode("binary", vectors)
    assert codes.shape[-1] == math.ceil(D / 8)
    decoded = codecs.decode("binary", codes, None, D)
    assert torch.equal(decoded > 0, vectors >= 0)
    torch.testing.assert_close(decoded.norm(dim=-1), torch.ones(4, 2))
    queries = codecs.prepare_queries("binary", vectors)
    # Identical sign patterns score 1; the score is 1 - 2 * hamming / D in general.
    torch.testing.assert_close((queries * decoded).sum(-1), torch.ones(4, 2))
    flipped = decoded.clone()
    flipped[..., :10] *= -1
    torch.testing.assert_close((queries * flipped).sum(-1), torch.full((4, 2), 1 - 2 * 10 / D))


def test_non_binary_queries_are_scored_as_given_and_unknown_dtypes_are_refused() -> None:
    queries = unit_vectors(2, 3, D, seed=3)
    assert codecs.prepare_queries("int8", queries) is queries
    with pytest.raises(ValueError, match="unknown index dtype 'float16'; supported: float32, bfloat16, int8, binary"):
        codecs.check_dtype("float16")


def test_decoding_reads_a_strided_prefix_of_a_stored_array() -> None:
    vectors = unit_vectors(6, 4, D, seed=4)
    for dtype in codecs.DTYPES:
        codes, scales = codecs.encode(dtype, vectors)
        prefix = codecs.decode(dtype, codes[1:4, :2], None if scales is None else scales[1:4, :2], D)
        full = codecs.decode(dtype, codes, scales, D)
        assert torch.equal(prefix, full[1:4, :2]), dtype
        assert isinstance(codes, np.ndarray)
