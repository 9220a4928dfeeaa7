"""Encode a corpus with a model and save it as a `MultiVectorIndex`, with what search needs beside it.

The manifest's meta pins the model (its URI, registry version and folder sha256, which search
checks before it answers anything) and the corpus (folder, content sha256, layout, counts). The
sidecar `corpus.json`, saved with the index (so replaced with it and listed in its manifest),
maps each id to what a result shows and lists the candidates left out. A model from the registry
gets a tag on its version that points at the index (`registry.indexes.link_index`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from metaembed import __version__
from metaembed.index import MultiVectorIndex
from metaembed.index import persist
from metaembed.registry.load import PinnedModel
from metaembed.serving.corpus import Corpus
from metaembed.serving.sidecar import SIDECAR, sidecar_text
from metaembed.tracking.redact import redact_uri


@dataclass(frozen=True)
class Built:
    folder: Path
    index: MultiVectorIndex
    manifest_sha256: str
    seconds: float
    link_tag: str | None = None  # the version tag that points at the index, when linked


def encode_corpus(model, corpus: Corpus, batch_size: int = 32, progress: bool = True
                  ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Full-size candidate vectors [N, R_c, D], their mask [N, R_c] and ids, in corpus order."""
    from metaembed.evaluation.encode import encode_side

    items = {candidate.id: candidate.side for candidate in corpus.candidates}
    store = encode_side(model, "candidate", items, batch_size=batch_size, progress=progress,
                        desc="encode candidates")
    mask = torch.arange(store.vectors.shape[1])[None, :] < store.lengths[:, None]
    return store.vectors, mask, store.keys


def index_meta(pinned: PinnedModel, corpus: Corpus) -> dict[str, str]:
    """What the manifest records about the model and the corpus (str values only)."""
    from metaembed.registry.digest import folder_sha256

    model = pinned.model
    meta = {
        "model_uri": pinned.uri,
        "model_sha256": pinned.sha256,
        "model_pooling": model.params.pooling,
        "query_vectors": str(model.num_vectors("query") or ""),  # "" for token-level models
        "corpus_path": str(corpus.folder.resolve()),
        "corpus_sha256": folder_sha256(corpus.folder),
        "layout": corpus.layout,
        "candidates": str(len(corpus.candidates)),
        "skipped": str(len(corpus.skipped)),
        "ignored": str(len(corpus.ignored)),
        "metaembed_version": __version__,
    }
    if pinned.version is not None:
        meta |= {"model_name": pinned.name, "model_version": pinned.version}
    if pinned.store is not None:
        meta["model_store"] = redact_uri(pinned.store)  # for messages only: never credentials on disk
    return meta


def corpus_sidecar(corpus: Corpus) -> str:
    return sidecar_text(corpus.layout, corpus.folder, {c.id: c.display for c in corpus.candidates},
                        [{"item": s.item, "reason": s.reason} for s in corpus.skipped], corpus.ignored)


def build_index(pinned: PinnedModel, corpus: Corpus, out: str | Path, dtype: str = "bfloat16",
                first_stage: str | None = "hnsw", batch_size: int = 32, progress: bool = True,
                link: bool = True, first_stage_vectors: int = 1, first_stage_pool: str = "mean") -> Built:
    """Encode, build, save atomically to `out`, and (registry models, `link`) tag the version."""
    out = Path(out)
    started = time.perf_counter()
    vectors, mask, ids = encode_corpus(pinned.model, corpus, batch_size, progress)
    index = MultiVectorIndex.build(vectors, mask, ids, dtype=dtype, first_stage=first_stage,
                                   first_stage_vectors=first_stage_vectors, first_stage_pool=first_stage_pool,
                                   meta=index_meta(pinned, corpus))
    index.save(out, sidecars={SIDECAR: corpus_sidecar(corpus)})
    digest = persist.sha256(out / persist.MANIFEST)
    tag = _link(pinned, out, index, digest) if link and pinned.version is not None else None
    return Built(out, index, digest, time.perf_counter() - started, tag)


def _link(pinned: PinnedModel, out: Path, index: MultiVectorIndex, manifest_sha256: str) -> str:
    from metaembed.registry.indexes import client_for, link_index

    record = {"manifest_sha256": manifest_sha256, "candidates": str(len(index)), "dtype": index.dtype,
              "built_at": index.built_at}
    return link_index(client_for(pinned.store), pinned.name, pinned.version, out, record)
