"""Encode every distinct query and candidate once, at full size, and keep the vectors.

MMEB candidate lists repeat the same labels and images across queries (about 13k distinct
candidates behind 180k slots on the default data), and ViDoRe v1 ships its pages twice (QA and
BEIR layouts), so items are keyed by side, text and image and each key is encoded once. Batches
are formed after sorting by modality and text length, which keeps padding low.

An `EmbeddingStore` holds one side as `[N, R, D]` float32 vectors plus the number of real
vectors per row. Token-level models give a different count per item: their real vectors are
moved to the front (MaxSim does not depend on their order) and the rest is zero padding. The
store is saved as safetensors with a JSON index (keys, model fingerprint), so the sweep and a
re-run of `evaluate` re-score without re-encoding.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from metaembed.data.records import ImageRef, Side

SIDES = ("query", "candidate")
STORE_FILE = "embeddings.safetensors"
INDEX_FILE = "embeddings.json"
FORMAT = 1


def item_key(text: str, image: ImageRef | None) -> str:
    """Identity of one input: its text and its image (path, or a digest of embedded bytes)."""
    digest = hashlib.sha1(text.encode())
    digest.update(b"\0")
    if image is not None:
        digest.update(image.fingerprint().encode())
    return digest.hexdigest()[:24]


@dataclass
class Requests:
    """Distinct inputs to encode per side, in first-seen order."""

    items: dict[str, dict[str, Side]] = field(default_factory=lambda: {side: {} for side in SIDES})

    def add(self, side: str, item: Side) -> str:
        key = item_key(item.text, item.image)
        self.items[side].setdefault(key, item)
        return key

    def count(self, side: str) -> int:
        return len(self.items[side])


@dataclass
class EmbeddingStore:
    """One side's vectors: `vectors[i, :lengths[i]]` are item i's real vectors."""

    keys: list[str]
    vectors: torch.Tensor  # [N, R, D] float32
    lengths: torch.Tensor  # [N] int64
    _rows: dict[str, int] | None = field(default=None, repr=False)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[2])

    def rows(self, keys: list[str]) -> torch.Tensor:
        if self._rows is None:
            self._rows = {key: row for row, key in enumerate(self.keys)}
        try:
            return torch.tensor([self._rows[key] for key in keys], dtype=torch.long)
        except KeyError as error:
            raise KeyError(f"item {error.args[0]} was never encoded: "
                           "the embedding cache does not match the data") from None

    def take(self, rows: torch.Tensor, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`(vectors [n, r, D], mask [n, r])` of the given rows, at most `limit` vectors each.

        The mask is None when every row is full, which spares maxsim a masking pass.
        """
        lengths = self.lengths[rows]
        width = int(lengths.max()) if len(rows) else 0
        if limit is not None:
            width = min(width, limit)
        vectors = self.vectors[:, :width].index_select(0, rows)
        if bool((lengths >= width).all()):
            return vectors, None
        return vectors, torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)

    def mean_length(self) -> float:
        return float(self.lengths.double().mean()) if len(self.keys) else 0.0

    def select(self, keys: list[str]) -> EmbeddingStore:
        """A store of exactly `keys`, in that order."""
        rows = self.rows(keys)
        lengths = self.lengths[rows]
        width = int(lengths.max()) if len(keys) else 1
        return EmbeddingStore(list(keys), self.vectors[:, :width].index_select(0, rows), lengths)

    @staticmethod
    def empty(dim: int) -> EmbeddingStore:
        return EmbeddingStore([], torch.zeros(0, 1, dim), torch.zeros(0, dtype=torch.long))

    @staticmethod
    def concat(stores: list[EmbeddingStore]) -> EmbeddingStore:
        stores = [s for s in stores if s.keys]
        if not stores:
            raise ValueError("nothing to concatenate")
        width = max(s.vectors.shape[1] for s in stores)
        padded = [torch.nn.functional.pad(s.vectors, (0, 0, 0, width - s.vectors.shape[1])) for s in stores]
        keys = [k for s in stores for k in s.keys]
        return EmbeddingStore(keys, torch.cat(padded), torch.cat([s.lengths for s in stores]))


def encode_side(model, side: str, items: dict[str, Side], batch_size: int = 64, progress: bool = True,
                desc: str | None = None) -> EmbeddingStore:
    """Encode `items` (key -> Side) with `model` at full size, batched, in inference mode."""
    from tqdm import tqdm

    from metaembed.training.collator import side_inputs

    keys = list(items)
    if not keys:
        return EmbeddingStore.empty(model.dim)
    order = sorted(range(len(keys)), key=lambda i: (items[keys[i]].image is not None, len(items[keys[i]].text)))
    fixed = model.num_vectors(side)  # None: token-level, a different count per item
    rows: list[torch.Tensor] = [None] * len(keys)  # type: ignore[list-item]
    out = torch.zeros(len(keys), fixed, model.dim) if fixed else None
    bar = tqdm(total=len(keys), desc=desc or f"encode {side}s", unit=side, disable=not progress)
    with bar, torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            texts, images = side_inputs([items[keys[i]] for i in chunk])
            try:
                vectors, mask = model.encode(side, texts, images)
            except Exception as error:
                first = items[keys[chunk[0]]]
                where = first.image.describe() if first.image else repr(first.text[:60])
                raise type(error)(f"encoding a batch of {side}s (first: {where}): {error}") from error
            vectors, mask = vectors.float().cpu(), mask.cpu()
            bar.update(len(chunk))
            if out is not None:
                out[chunk] = vectors
                continue
            for j, i in enumerate(chunk):
                # Real vectors first: with left padding a token-level mask is a suffix.
                rows[i] = vectors[j][mask[j]]
    if out is not None:
        return EmbeddingStore(keys, out, torch.full((len(keys),), fixed, dtype=torch.long))
    lengths = torch.tensor([row.shape[0] for row in rows], dtype=torch.long)
    return EmbeddingStore(keys, torch.nn.utils.rnn.pad_sequence(rows, batch_first=True), lengths)


def save_stores(folder: str | Path, stores: dict[str, EmbeddingStore], meta: dict) -> Path:
    """Write both sides atomically: the JSON index, written last, marks a complete cache."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index = folder / INDEX_FILE
    index.unlink(missing_ok=True)
    tensors = {}
    for side, store in stores.items():
        tensors[f"{side}.vectors"] = store.vectors.contiguous()
        tensors[f"{side}.lengths"] = store.lengths.contiguous()
    scratch = folder / f".{STORE_FILE}.tmp"
    save_file(tensors, scratch)
    os.replace(scratch, folder / STORE_FILE)
    payload = {"format": FORMAT, **meta, "keys": {side: store.keys for side, store in stores.items()}}
    scratch = folder / f".{INDEX_FILE}.tmp"
    scratch.write_text(json.dumps(payload))
    os.replace(scratch, index)
    return folder


def load_stores(folder: str | Path) -> tuple[dict[str, EmbeddingStore], dict]:
    """The stores and the metadata saved with them; FileNotFoundError if there is no complete cache."""
    folder = Path(folder)
    index = folder / INDEX_FILE
    if not index.is_file() or not (folder / STORE_FILE).is_file():
        raise FileNotFoundError(f"{folder}: no embedding cache ({INDEX_FILE} + {STORE_FILE}); run `metaembed evaluate` "
                                "with evaluate.cache_embeddings: true first")
    meta = json.loads(index.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{index}: cache format {meta.get('format')!r}, expected {FORMAT}; "
                         "re-run `metaembed evaluate`")
    tensors = load_file(folder / STORE_FILE)
    stores = {side: EmbeddingStore(keys, tensors[f"{side}.vectors"], tensors[f"{side}.lengths"])
              for side, keys in meta.pop("keys").items()}
    return stores, meta


def encode_requests(model, requests: Requests, batch_size: int = 64, progress: bool = True,
                    cache: dict[str, EmbeddingStore] | None = None) -> dict[str, EmbeddingStore]:
    """Both sides, reusing whatever `cache` (from the same model) already holds."""
    stores = {}
    for side in SIDES:
        wanted = requests.items[side]
        have = cache.get(side) if cache else None
        known = set(have.keys) if have is not None else set()
        missing = {key: item for key, item in wanted.items() if key not in known}
        fresh = encode_side(model, side, missing, batch_size, progress) if missing else None
        parts = [s for s in (have, fresh) if s is not None and s.keys]
        if not parts:
            stores[side] = EmbeddingStore.empty(model.dim)
            continue
        merged = parts[0] if len(parts) == 1 else EmbeddingStore.concat(parts)
        # Drop what the data no longer asks for, so the cache does not grow with every change.
        stores[side] = merged if merged.keys == list(wanted) else merged.select(list(wanted))
    return stores
