"""MultiVectorIndex: stored candidate vectors searched with budgeted MaxSim, exhaustively or after
a first-stage shortlist.

Scoring goes through `metaembed.scoring.maxsim` on float32 blocks decoded from the stored codes,
so the index ranks exactly as the evaluation scores (up to the storage dtype's rounding).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metaembed.index import codecs, inputs, persist
from metaembed.index import first_stage as stage1  # the name `first_stage` is build's argument
from metaembed.index.first_stage import FirstStageSettings
from metaembed.index.ranking import RunningTopK
from metaembed.index.shortlist import shortlists
from metaembed.index.store import Segment, VectorStore
from metaembed.scoring import maxsim

# Decoded float32 vectors per block: a few MiB stays in cache between decoding and the matmul.
_BLOCK_BYTES = 8 * 2**20
# Rows encoded at a time on build/add, so a float32 copy of a huge input is never made at once.
_ENCODE_ROWS = 4096


class MultiVectorIndex:
    """Candidates' [R_c, D] vectors, searchable at any budget (r_q, r_c). Build with `build`,
    open a saved one with `load`."""

    def __init__(
        self,
        store: VectorStore,
        ids: list[str],
        removed: np.ndarray,
        settings: FirstStageSettings | None,
        ann: Any,
        meta: dict[str, str],
        built_at: str,
    ) -> None:
        self._store = store
        self._ids = ids
        self._removed = removed
        self._settings = settings
        self._ann = ann
        self.meta = meta
        self.built_at = built_at
        live = np.flatnonzero(~removed).tolist()
        self._row_of = dict(zip(map(ids.__getitem__, live), live))
        if len(self._row_of) != len(live):
            raise ValueError("a live id occurs twice")
        self._ann_mapped = False  # set by load(mmap=True): the faiss index must be copied before it grows

    # ----- building and changing -------------------------------------------------------------

    @classmethod
    def build(
        cls,
        embeddings: torch.Tensor | np.ndarray,
        mask: torch.Tensor | np.ndarray | None,
        ids: Sequence[str],
        dtype: str = "bfloat16",
        first_stage: str | None = "hnsw",
        meta: dict[str, str] | None = None,
        hnsw_m: int = FirstStageSettings.hnsw_m,
        ef_construction: int = FirstStageSettings.ef_construction,
        ef_search: int = FirstStageSettings.ef_search,
        first_stage_vectors: int = FirstStageSettings.vectors,
        first_stage_pool: str = FirstStageSettings.pool,
    ) -> MultiVectorIndex:
        """Index full-size candidate embeddings [N, R_c, D] (L2-normalised) with mask [N, R_c]
        (None: all real) under unique str ids.

        dtype: how rerank vectors are stored, one of codecs.DTYPES. first_stage: "hnsw", "flat"
        or None (exhaustive search only); hnsw_m / ef_construction / ef_search tune HNSW
        (ef_search is the default beam of every search); first_stage_vectors: each candidate's
        leading vectors in the ANN (1, or up to R_c), first_stage_pool: "first" or "mean" (one
        mean vector per candidate): see first_stage.py. meta: str values kept in the manifest.
        """
        codecs.check_dtype(dtype)
        settings = None
        if first_stage is not None:
            settings = FirstStageSettings(first_stage, hnsw_m, ef_construction, ef_search, first_stage_vectors,
                                          first_stage_pool)
        vectors = inputs.as_vectors(embeddings, "embeddings", "[N, R_c, D]")
        num_rows, num_vectors, dim = vectors.shape
        if num_rows == 0 or num_vectors == 0 or dim == 0:
            raise ValueError(f"embeddings has shape {tuple(vectors.shape)}; nothing to index")
        if settings is not None and settings.vectors > num_vectors:
            raise ValueError(f"first_stage_vectors={settings.vectors} exceeds the candidates' R_c={num_vectors}")
        index = cls(
            VectorStore(dtype, dim, num_vectors, []),
            [],
            np.zeros(0, dtype=bool),
            settings,
            None if settings is None else stage1.build(settings, dim),
            inputs.check_meta(meta),
            _now(),
        )
        index.add(vectors, mask, ids)
        return index

    def add(self, embeddings: torch.Tensor | np.ndarray, mask: torch.Tensor | np.ndarray | None,
            ids: Sequence[str]) -> None:
        """Append rows [n, R_c, D] with their mask and new ids; no rebuild (HNSW inserts them)."""
        store = self._store
        vectors = inputs.as_vectors(embeddings, "embeddings", "[n, R_c, D]")
        if vectors.shape[1:] != (store.num_vectors, store.dim):
            raise ValueError(
                f"embeddings has shape {tuple(vectors.shape)} but this index stores "
                f"[n, R_c={store.num_vectors}, D={store.dim}] vectors"
            )
        mask = inputs.as_mask(mask, "mask", tuple(vectors.shape[:2]), "[n, R_c]")
        ids = inputs.check_ids(ids, vectors.shape[0], self._row_of)
        inputs.check_first_vectors_real(mask, ids, "add")
        codes, scales = self._encode(vectors, mask, ids)
        if self._ann_mapped:
            self._ann, self._ann_mapped = stage1.owned(self._ann), False
        if self._ann is not None:
            stage1.add(self._ann, self._ann_vectors(vectors, mask).numpy())
        start = store.num_rows
        store.append(codes, scales, mask.numpy().copy())
        self._ids.extend(ids)
        self._removed = np.concatenate([self._removed, np.zeros(len(ids), dtype=bool)])
        self._row_of.update((item, start + offset) for offset, item in enumerate(ids))

    def _ann_vectors(self, vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[n, m, D] float32: what each row puts in the first stage."""
        if self._settings.pool == "mean":
            return stage1.mean_vectors(vectors.to(torch.float32), mask)
        leading = vectors[:, : self._settings.vectors].to(torch.float32)
        # Padding goes in as zeros (never returned: the search skips it), like the stored codes.
        return leading.masked_fill(~mask[:, : leading.shape[1], None], 0)

    def remove(self, ids: Sequence[str]) -> None:
        """Tombstone these rows: never returned again. Unknown ids change nothing and raise."""
        ids = [ids] if isinstance(ids, str) else list(ids)
        # Check every id before touching any, so a bad list leaves the index as it was.
        seen: set[str] = set()
        for item in ids:
            if item in seen:
                raise ValueError(f"remove: id {item!r} is listed twice; nothing was removed")
            if item not in self._row_of:
                raise ValueError(
                    f"remove: id {item!r} is not in the index (never added, or already removed); "
                    "nothing was removed"
                )
            seen.add(item)
        self._removed[[self._row_of.pop(item) for item in ids]] = True

    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, item: object) -> bool:
        return item in self._row_of

    @property
    def dims(self) -> tuple[int, int, int]:
        """(N stored rows, removed included; R_c; D)."""
        return self._store.num_rows, self._store.num_vectors, self._store.dim

    @property
    def dtype(self) -> str:
        return self._store.dtype

    @property
    def first_stage(self) -> FirstStageSettings | None:
        return self._settings

    def _encode(self, vectors: torch.Tensor, mask: torch.Tensor, ids: list[str]
                ) -> tuple[np.ndarray, np.ndarray | None]:
        dtype, dim = self._store.dtype, self._store.dim
        n, r = vectors.shape[:2]
        codes = np.empty((n, r, codecs.code_width(dtype, dim)), dtype=codecs.CODE_DTYPES[dtype])
        scales = np.empty((n, r), dtype=np.float32) if codecs.has_scales(dtype) else None
        for n0 in range(0, n, _ENCODE_ROWS):
            chunk = vectors[n0:n0 + _ENCODE_ROWS].to(torch.float32)
            inputs.check_finite(chunk, n0, ids, "embeddings")
            # Padding is stored as zeros so its bytes (and the file's sha256) do not depend on it.
            chunk = chunk.masked_fill(~mask[n0:n0 + _ENCODE_ROWS, :, None], 0)
            block_codes, block_scales = codecs.encode(dtype, chunk)
            codes[n0:n0 + len(chunk)] = block_codes
            if scales is not None:
                scales[n0:n0 + len(chunk)] = block_scales
        return codes, scales

    # ----- search ---------------------------------------------------------------------------

    def search(
        self,
        queries: torch.Tensor | np.ndarray,
        query_mask: torch.Tensor | np.ndarray | None = None,
        budget: tuple[int, int] | None = None,
        k: int = 10,
        first_stage_k: int | None = None,
        block_size: int | None = None,
        ef_search: int | None = None,
    ) -> tuple[torch.Tensor, list[list[str]]]:
        """The k best live candidates per query by MaxSim at `budget` (None: (R_q, R_c)).

        Returns scores [B, k'] float32 (k' = min(k, live rows); -inf pads a query that got fewer)
        and the ids per query, best first, ties in row order. first_stage_k=None scores every
        candidate, `block_size` rows at a time (None: about 8 MiB of decoded vectors); an int
        shortlists that many rows per query by the first stage on the queries' first vector
        (HNSW beam `ef_search`, default the build's) and scores only those.
        """
        queries, query_mask, budget = self._check_queries(queries, query_mask, budget)
        inputs.check_positive(k, "k")
        inputs.check_positive(first_stage_k, "first_stage_k", allow_none=True)
        inputs.check_positive(block_size, "block_size", allow_none=True)
        inputs.check_positive(ef_search, "ef_search", allow_none=True)
        block_rows = block_size or max(1, _BLOCK_BYTES // (budget[1] * self._store.dim * 4))
        scored = codecs.prepare_queries(self._store.dtype, queries)
        with torch.inference_mode():
            if first_stage_k is None:
                top = self._exhaustive(scored, query_mask, budget, k, block_rows)
                scores, rows = top.result()
            else:
                scores, rows = self._two_stage(queries, scored, query_mask, budget, k, first_stage_k,
                                               block_rows, ef_search)
        return scores, [[self._ids[row] for row in per_query] for per_query in rows]

    def _check_queries(self, queries: Any, query_mask: Any, budget: Any
                       ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        queries = inputs.as_vectors(queries, "queries", "[B, R_q, D]").to(torch.float32)
        if queries.shape[2] != self._store.dim:
            raise ValueError(f"queries have D={queries.shape[2]} but the index holds D={self._store.dim}")
        query_mask = inputs.as_mask(query_mask, "query_mask", tuple(queries.shape[:2]), "[B, R_q]")
        budget = inputs.check_budget(budget, queries.shape[1], self._store.num_vectors)
        empty = (~query_mask[:, : budget[0]].any(dim=1)).nonzero().flatten()
        if empty.numel():
            raise ValueError(
                f"query {int(empty[0])} has no real vector among its first r_q={budget[0]} "
                "(query_mask all False there); drop it or use a larger r_q"
            )
        inputs.check_finite(queries, 0, [f"query {b}" for b in range(len(queries))], "queries")
        return queries, query_mask, budget

    def _exhaustive(self, queries: torch.Tensor, query_mask: torch.Tensor, budget: tuple[int, int],
                    k: int, block_rows: int) -> RunningTopK:
        top = RunningTopK(queries.shape[0], k)
        removed = torch.from_numpy(self._removed)
        any_removed = bool(self._removed.any())
        for block in self._store.blocks(budget[1], block_rows):
            scores = maxsim(queries, block.vectors, budget, query_mask, block.mask)
            if any_removed:
                scores = scores.masked_fill(removed[block.rows], float("-inf"))
            top.push(scores, block.rows)
        return top

    def _two_stage(self, queries: torch.Tensor, scored: torch.Tensor, query_mask: torch.Tensor,
                   budget: tuple[int, int], k: int, first_stage_k: int, block_rows: int,
                   ef_search: int | None) -> tuple[torch.Tensor, list[list[int]]]:
        if self._ann is None:
            raise ValueError(
                "this index was built with first_stage=None: search with first_stage_k=None "
                "(exhaustive), or rebuild with first_stage='hnsw' or 'flat'"
            )
        if first_stage_k < k:
            raise ValueError(f"first_stage_k={first_stage_k} is below k={k}: it must shortlist at least k rows")
        if not bool(query_mask[:, 0].all()):
            raise ValueError("two-stage search needs every query's first vector real (query_mask[:, 0])")
        shortlist = shortlists(self._ann, self._settings, self._store, self._removed, queries, query_mask, budget,
                               first_stage_k, ef_search)
        width = min(k, len(self))
        scores = torch.full((len(queries), width), float("-inf"))
        rows: list[list[int]] = []
        # One query at a time: shortlists differ, and scoring each against only its own rows
        # costs B * K pairs where scoring the union would cost up to B * B * K.
        for b, candidates in enumerate(shortlist):
            top = RunningTopK(1, k)
            for block in self._store.gather(candidates, budget[1], block_rows):
                top.push(maxsim(scored[b:b + 1], block.vectors, budget, query_mask[b:b + 1], block.mask),
                         block.rows)
            found, found_rows = top.result()
            scores[b, : found.shape[1]] = found[0]
            rows.append(found_rows[0])
        return scores, rows

    # ----- disk -----------------------------------------------------------------------------

    def save(self, folder: str | Path, sidecars: dict[str, str] | None = None) -> Path:
        """Write the index to `folder` atomically (see persist.py); returns the folder.

        sidecars: extra text files (name -> content) written with the index, so they are replaced
        with it and listed (size, sha256) in its manifest, e.g. what each candidate showed. They
        are not kept by the index: a later `save` writes only the sidecars it is given.
        """
        folder = Path(folder)
        store = self._store
        num_rows, num_vectors, dim = self.dims
        width = codecs.code_width(store.dtype, dim)
        sidecars = persist.check_sidecars(sidecars)
        with persist.atomic_folder(folder) as scratch:
            for name, text in sidecars.items():
                persist.write_text(scratch / name, text)
            segments = store.segments
            persist.write_array(scratch / persist.CODES, (s.codes for s in segments),
                                (num_rows, num_vectors, width), codecs.CODE_DTYPES[store.dtype])
            if codecs.has_scales(store.dtype):
                persist.write_array(scratch / persist.SCALES, (s.scales for s in segments),
                                    (num_rows, num_vectors), np.dtype(np.float32))
            persist.write_array(scratch / persist.MASK, (s.mask for s in segments),
                                (num_rows, num_vectors), np.dtype(bool))
            persist.write_array(scratch / persist.TOMBSTONES, [self._removed], (num_rows,), np.dtype(bool))
            persist.write_text(scratch / persist.IDS, json.dumps(self._ids))
            if self._ann is not None:
                stage1.write(self._ann, scratch / persist.FIRST_STAGE)
            files = {path.name: persist.file_record(path) for path in sorted(scratch.iterdir())}
            persist.write_text(scratch / persist.MANIFEST, json.dumps(self._manifest(files), indent=2))
        return folder

    def _manifest(self, files: dict[str, Any]) -> dict[str, Any]:
        num_rows, num_vectors, dim = self.dims
        return {
            "format": persist.FORMAT,
            "format_version": persist.FORMAT_VERSION,
            "num_rows": num_rows,
            "num_vectors": num_vectors,
            "dim": dim,
            "dtype": self._store.dtype,
            "live": len(self),
            "first_stage": None if self._settings is None else self._settings.to_json(),
            "meta": self.meta,
            "built_at": self.built_at,
            "saved_at": _now(),
            "files": files,
        }

    @classmethod
    def load(cls, folder: str | Path, mmap: bool = True, verify: bool | None = None) -> MultiVectorIndex:
        """Open a saved index. mmap: memory-map the vector arrays (opening reads only headers).
        verify: check every file's sha256 (reads every byte); None does so only for folders of at
        most persist.VERIFY_AUTO_BYTES. Sizes and shapes are always checked."""
        folder = Path(folder)
        manifest = persist.read_manifest(folder)
        persist.check_files(folder, manifest, verify)
        dtype = codecs.check_dtype(manifest["dtype"])
        num_rows, num_vectors, dim = manifest["num_rows"], manifest["num_vectors"], manifest["dim"]
        shape = (num_rows, num_vectors)
        codes = persist.open_array(folder, persist.CODES, (*shape, codecs.code_width(dtype, dim)),
                                   codecs.CODE_DTYPES[dtype], mmap)
        scales = None
        if codecs.has_scales(dtype):
            scales = persist.open_array(folder, persist.SCALES, shape, np.dtype(np.float32), mmap)
        mask = persist.open_array(folder, persist.MASK, shape, np.dtype(bool), mmap)
        removed = np.array(persist.open_array(folder, persist.TOMBSTONES, (num_rows,), np.dtype(bool), False))
        ids = _read_ids(folder, num_rows)
        if int((~removed).sum()) != manifest["live"]:
            raise persist.mismatch(folder / persist.TOMBSTONES,
                                   f"{int((~removed).sum())} live rows but the manifest says {manifest['live']}")
        settings = FirstStageSettings.from_json(manifest["first_stage"])
        ann = None if settings is None else _read_first_stage(folder, num_rows * settings.vectors, dim, mmap)
        store = VectorStore(dtype, dim, num_vectors, [Segment(0, codes, scales, mask, mapped=mmap)])
        try:
            index = cls(store, ids, removed, settings, ann, manifest["meta"], manifest["built_at"])
        except ValueError as error:
            raise persist.mismatch(folder / persist.IDS, str(error)) from None
        index._ann_mapped = ann is not None and mmap
        return index


def _read_ids(folder: Path, num_rows: int) -> list[str]:
    """The ids (a live id twice is caught when the index maps ids to rows)."""
    path = folder / persist.IDS
    ids = json.loads(path.read_text())
    if not isinstance(ids, list) or len(ids) != num_rows or set(map(type, ids)) - {str}:
        raise persist.mismatch(path, f"expected a list of {num_rows} str ids")
    return ids


def _read_first_stage(folder: Path, entries: int, dim: int, mmap: bool) -> Any:
    path = folder / persist.FIRST_STAGE
    ann = stage1.read(path, mmap)
    if ann.ntotal != entries or ann.d != dim:
        raise persist.mismatch(path, f"holds {ann.ntotal} vectors of D={ann.d}, the manifest {entries} of D={dim}")
    return ann


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
