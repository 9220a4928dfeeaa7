"""An index opened with the model that built it: encode a query at a budget, search, show results.

`Searcher.open` loads the model the manifest names, by its pinned registry version (an alias
may have moved since the build) or its folder, and refuses to answer when the model's files no
longer hash to the manifest's sha256: candidates encoded by one model and queries by another
give rankings that look fine and mean nothing.
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from metaembed.data.readers.common import MAX_ASPECT_RATIO
from metaembed.images import ImageDecodeError, ImageLike, load_image
from metaembed.index import MultiVectorIndex
from metaembed.registry.load import PinnedModel, load_pinned
from metaembed.serving.budget import Budget, check_budget
from metaembed.serving.sidecar import read_sidecar
from metaembed.serving.limits import MAX_FIRST_STAGE_K, MAX_K


class ModelMismatchError(RuntimeError):
    """The model named in the index's manifest is not the one that built it any more."""


class QueryError(ValueError):
    """A query that cannot be searched as given (empty, bad k); the message says what to change."""


@dataclass(frozen=True)
class Hit:
    rank: int
    id: str
    score: float
    display: str


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    budget: Budget
    k: int
    first_stage_k: int | None
    encode_ms: float
    search_ms: float


class Searcher:
    def __init__(self, folder: Path, index: MultiVectorIndex, pinned: PinnedModel, display: dict[str, str],
                 max_k: int = MAX_K) -> None:
        self.folder = folder
        self.index = index
        self.pinned = pinned
        self.display = display
        self.max_k = max_k
        # One query at a time: the model's forward pass is not meant to run on several threads.
        self._lock = threading.Lock()

    @classmethod
    def open(cls, folder: str | Path, params_path: str | Path = "params.yaml", device: str = "cpu",
             max_k: int = MAX_K) -> Searcher:
        folder = Path(folder)
        index = MultiVectorIndex.load(folder)
        meta = index.meta
        if "model_sha256" not in meta or "model_uri" not in meta:
            raise ModelMismatchError(f"{folder}: the manifest names no model (meta has no model_uri/model_sha256); "
                                     "build the index with `metaembed index build` to search it here")
        uri, built_with = model_uri(meta), meta["model_sha256"]
        pinned = load_pinned(uri, device=device, params_path=params_path)
        if pinned.sha256 != built_with:
            raise ModelMismatchError(
                f"{folder} was built with {uri} whose files hashed to sha256 {built_with[:12]}..., but they now "
                f"hash to {pinned.sha256[:12]}...: the model changed since the build, so its queries would not "
                "match the stored candidates. Rebuild the index (`metaembed index build`) or restore that model")
        return cls(folder, index, pinned, read_sidecar(folder)["display"], max_k)

    # ---- what the index and model hold ------------------------------------------------------

    @property
    def model(self):
        return self.pinned.model

    @property
    def query_vectors(self) -> int | None:
        """R_q of the model; None for token-level models (it varies with the query)."""
        return self.model.num_vectors("query")

    @property
    def candidate_vectors(self) -> int:
        return self.index.dims[1]

    @property
    def full_budget(self) -> Budget:
        return (self.query_vectors or 1, self.candidate_vectors)

    def check_budget(self, budget: Budget) -> Budget:
        return check_budget(budget, self.query_vectors or max(budget[0], 1), self.candidate_vectors)

    # ---- search -----------------------------------------------------------------------------

    def search(self, text: str | None = None, image: ImageLike = None, budget: Budget | None = None, k: int = 10,
               first_stage_k: int | None = None) -> SearchResult:
        """The k best candidates for a text and/or image query at `budget` (None: full size)."""
        budget = self.check_budget(budget or self.full_budget)
        self._check_k(k, first_stage_k)
        text = text if text is not None and text.strip() else None
        if text is None and image is None:
            raise QueryError("empty query: give a text (not blank), an image, or both")
        decoded = decode_query_image(image) if image is not None else None
        with self._lock:
            started = time.perf_counter()
            vectors, mask = self._encode(text, decoded, budget[0])
            encoded = time.perf_counter()
            scores, ids = self.index.search(vectors, mask, budget=budget, k=k, first_stage_k=first_stage_k)
            searched = time.perf_counter()
        hits = [Hit(rank + 1, item, float(scores[0, rank]), self.display.get(item, ""))
                for rank, item in enumerate(ids[0])]
        return SearchResult(hits, budget, k, first_stage_k, 1000 * (encoded - started), 1000 * (searched - encoded))

    def _encode(self, text: str | None, image: Any, r_q: int) -> tuple[torch.Tensor, torch.Tensor]:
        # Only meta pooling encodes a prefix; other poolings give all their vectors and the index
        # takes the first r_q.
        prefix = r_q if self.model.params.pooling == "meta" else None
        try:
            with torch.inference_mode():
                vectors, mask = self.model.encode_queries([text], [image], budget=prefix)
        except ValueError as error:  # what the prompt and the image processor raise for their input
            raise QueryError(f"the model cannot encode this query: {error}") from None
        if self.query_vectors is None and r_q > vectors.shape[1]:
            raise QueryError(f"budget r_q={r_q} but this query has {vectors.shape[1]} vectors (token-level model)")
        return vectors.float().cpu(), mask.cpu()

    def _check_k(self, k: int, first_stage_k: int | None) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.max_k:
            raise QueryError(f"k={k!r} is out of range: ask for 1..{self.max_k} results")
        if first_stage_k is None:
            return
        if self.index.first_stage is None:
            raise QueryError("this index has no first stage (built with --first-stage none): leave first_stage_k "
                             "unset for an exhaustive search")
        if isinstance(first_stage_k, bool) or not isinstance(first_stage_k, int) or \
                not k <= first_stage_k <= MAX_FIRST_STAGE_K:
            raise QueryError(f"first_stage_k={first_stage_k!r} is out of range: it must be in k..{MAX_FIRST_STAGE_K} "
                             f"(k={k}; the shortlist must hold at least k candidates)")


def model_uri(meta: dict[str, str]) -> str:
    """What loads the index's model: its pinned registry version, else the URI or folder given."""
    if meta.get("model_name") and meta.get("model_version"):
        return f"models:/{meta['model_name']}/{meta['model_version']}"
    return meta["model_uri"]


def decode_query_image(image: ImageLike):
    """An RGB image the processor accepts, or ImageDecodeError saying why not."""
    from PIL import Image

    with warnings.catch_warnings():
        # Pillow only warns up to twice its pixel limit: refuse those too (a query, not a poster).
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            decoded = load_image(image, where="query image")
        except Image.DecompressionBombWarning as error:
            raise ImageDecodeError(f"query image: {error}") from None
    width, height = decoded.size
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageDecodeError(f"query image is {width}x{height}: aspect ratios above {MAX_ASPECT_RATIO} are refused "
                               "by the image processor; crop or pad it")
    return decoded
