"""Training batches for the model: the sampler's pairs -> prompted, left-padded backbone inputs.

A thin layer over `metaembed.batching.build_batch`, which applies the paper's prompt templates,
maps MMEB's `<|image_1|>` to the backbone's image marker, pads on the left and lets the processor
bound the visual tokens of each image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from metaembed.data.records import Side, TrainPair


def side_inputs(sides: Sequence[Side]) -> tuple[list[str], list[str | bytes | None]]:
    """Texts and images (path or bytes, what batching.load_image takes) of a list of sides."""
    return [side.text for side in sides], [side.image.as_input() if side.image else None for side in sides]


def encode_sides(processor: Any, role: str, sides: Sequence[Side]):
    """One side of a batch ("query" or "candidate") as backbone inputs."""
    from metaembed.batching import build_batch

    texts, images = side_inputs(sides)
    return build_batch(processor, role, texts, images)


class PairCollator:
    """Queries, positives and the hard negatives that exist; `negative_index[j]` is the query of negative j.

    With `chunk` (GradCache), each side is a list of inputs of at most `chunk` rows each, padded
    per chunk, in row order: the model encodes them one at a time.
    """

    def __init__(self, processor: Any, chunk: int | None = None) -> None:
        self.processor = processor
        self.chunk = chunk

    def __call__(self, pairs: Sequence[TrainPair]) -> dict[str, Any]:
        import torch

        if not pairs:
            raise ValueError("empty batch")
        with_negative = [i for i, pair in enumerate(pairs) if pair.negative is not None]
        negatives = [pairs[i].negative for i in with_negative]
        return {
            "query": self._encode("query", [pair.query for pair in pairs]),
            "positive": self._encode("candidate", [pair.positive for pair in pairs]),
            "negative": self._encode("candidate", negatives) if negatives else None,
            "negative_index": torch.tensor(with_negative, dtype=torch.long),
            "sources": [pair.source for pair in pairs],
        }

    def _encode(self, role: str, sides: Sequence[Side]):
        if self.chunk is None:
            return encode_sides(self.processor, role, sides)
        return [encode_sides(self.processor, role, sides[start : start + self.chunk])
                for start in range(0, len(sides), self.chunk)]
