"""A deterministic PNG writer for palette images.

zlib's compressed bytes depend on the zlib build (zlib, zlib-ng, distribution patches), so PNGs
written through Pillow or `zlib.compress` can differ between machines. This writer makes its own
deflate stream with the fixed Huffman code and only two kinds of matches, a run of one byte
(distance 1) and a copy of the whole previous row: enough for flat synthetic drawings, and a pure
function of the pixels. Checksums (crc32, adler32) come from zlib: they are defined exactly.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAX_MATCH = 258
_LENGTH_BASES = (3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
                 131, 163, 195, 227, 258)
_LENGTH_EXTRA = (0,) * 8 + (1,) * 4 + (2,) * 4 + (3,) * 4 + (4,) * 4 + (5,) * 4 + (0,)
_DIST_BASES = (1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
               2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577)
_DIST_EXTRA = (0, 0, 0, 0) + tuple(bits for bits in range(1, 14) for _ in range(2))


def _reverse(code: int, bits: int) -> int:
    # Huffman codes are sent most significant bit first into a least-significant-first stream.
    return int(format(code, f"0{bits}b")[::-1], 2)


def _fixed_literal(symbol: int) -> tuple[int, int]:
    if symbol < 144:
        return _reverse(0x30 + symbol, 8), 8
    if symbol < 256:
        return _reverse(0x190 + symbol - 144, 9), 9
    if symbol < 280:
        return _reverse(symbol - 256, 7), 7
    return _reverse(0xC0 + symbol - 280, 8), 8


def _length_code(length: int) -> tuple[int, int]:
    index = max(i for i, base in enumerate(_LENGTH_BASES) if base <= length)
    if length == 258:
        index = len(_LENGTH_BASES) - 1
    code, bits = _fixed_literal(257 + index)
    extra = _LENGTH_EXTRA[index]
    return code | ((length - _LENGTH_BASES[index]) << bits), bits + extra


def _distance_code(distance: int) -> tuple[int, int]:
    index = max(i for i, base in enumerate(_DIST_BASES) if base <= distance)
    code = _reverse(index, 5)
    return code | ((distance - _DIST_BASES[index]) << 5), 5 + _DIST_EXTRA[index]


_LITERALS = [_fixed_literal(symbol) for symbol in range(257)]
_LENGTHS = {length: _length_code(length) for length in range(3, _MAX_MATCH + 1)}


class _Symbols:
    """Deflate symbols as (value, bit count) pairs, packed least significant bit first at the end."""

    def __init__(self) -> None:
        self.values: list[int] = []
        self.nbits: list[int] = []
        self._distances: dict[int, tuple[int, int]] = {}

    def bits(self, value: int, nbits: int) -> None:
        self.values.append(value)
        self.nbits.append(nbits)

    def literal(self, byte: int) -> None:
        value, nbits = _LITERALS[byte]
        self.values.append(value)
        self.nbits.append(nbits)

    def match(self, length: int, distance: int) -> None:
        """A copy of `length` bytes from `distance` back, split into legal pieces of 3..258."""
        if distance not in self._distances:
            self._distances[distance] = _distance_code(distance)
        dist_value, dist_bits = self._distances[distance]
        while length > 0:
            piece = min(length, _MAX_MATCH)
            if 0 < length - piece < 3:
                piece = length - 3
            value, nbits = _LENGTHS[piece]
            self.values.append(value | (dist_value << nbits))
            self.nbits.append(nbits + dist_bits)
            length -= piece

    def pack(self) -> bytes:
        values = np.array(self.values, dtype=np.uint64)
        nbits = np.array(self.nbits, dtype=np.int64)
        positions = np.arange(32, dtype=np.uint64)
        bits = ((values[:, None] >> positions) & np.uint64(1)).astype(np.uint8)
        return np.packbits(bits[positions[None, :] < nbits[:, None]], bitorder="little").tobytes()


def deflate_rows(pixels: np.ndarray) -> bytes:
    """A zlib stream of the PNG scanlines (filter byte 0 before every row)."""
    height, width = pixels.shape
    scanline = width + 1
    stream = np.zeros((height, scanline), dtype=np.uint8)
    stream[:, 1:] = pixels
    repeats = np.zeros(height, dtype=bool)
    repeats[1:] = (stream[1:] == stream[:-1]).all(axis=1)
    flat = stream.ravel()
    boundary = np.ones(flat.size, dtype=bool)
    boundary[1:] = flat[1:] != flat[:-1]
    boundary[::scanline] = True
    starts = np.flatnonzero(boundary)
    row_first = np.searchsorted(starts, np.arange(height + 1) * scanline).tolist()
    starts_list, values = starts.tolist() + [flat.size], flat[starts].tolist()
    symbols = _Symbols()
    symbols.bits(0b011, 3)  # final block, fixed Huffman
    for row in range(height):
        if repeats[row]:
            symbols.match(scanline, scanline)
            continue
        for run in range(row_first[row], row_first[row + 1]):
            value, repeat = values[run], starts_list[run + 1] - starts_list[run] - 1
            symbols.literal(value)
            if repeat >= 3:
                symbols.match(repeat, 1)
            else:
                for _ in range(repeat):
                    symbols.literal(value)
    symbols.literal(256)
    return b"\x78\x01" + symbols.pack() + struct.pack(">I", zlib.adler32(flat.tobytes()))


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def encode_palette_png(pixels: np.ndarray, palette: Sequence[tuple[int, int, int]]) -> bytes:
    """PNG bytes of an (H, W) uint8 array of palette indices; no timestamps or text chunks."""
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise ValueError(f"expected an (H, W) uint8 array of palette indices, got {pixels.dtype} {pixels.shape}")
    if not 0 < len(palette) <= 256 or int(pixels.max()) >= len(palette):
        raise ValueError(f"palette of {len(palette)} colours does not cover index {int(pixels.max())}")
    height, width = pixels.shape
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    plte = b"".join(bytes(colour) for colour in palette)
    return (_PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"PLTE", plte)
            + _chunk(b"IDAT", deflate_rows(np.ascontiguousarray(pixels))) + _chunk(b"IEND", b""))
