"""The `index` stage: the served index of the evaluation corpus, and its search time per budget.

Every candidate the evaluation scored (MMEB candidates and ViDoRe pages, each distinct input once)
is indexed from the full-size vectors `evaluate` cached, so nothing is re-encoded. Then, at each
budget of the sweep's budgets.json, a sample of the cached queries is searched one at a time,
exhaustively and two-stage (docs/index.md), and the two-stage top-k is compared with the
exhaustive one. The gate reads these times, measured on a real index on this machine, in place
of the sweep's synthetic ones.

    <out_dir>/index/                the MultiVectorIndex; its manifest names the model folder and its
                                    sha256, corpus.json what each candidate shows (`metaembed search`)
    <out_dir>/latency.json          `metaembed.stage_outputs.IndexLatency` (registration reads it)
    <out_dir>/metrics.json          the same numbers for `dvc metrics show`
    <out_dir>/plot_data.json        rows for the DVC plots
    <out_dir>/latency_per_budget.png
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from metaembed import __version__
from metaembed.config import ParamsRoot
from metaembed.data.records import Side
from metaembed.evaluation.encode import EmbeddingStore
from metaembed.serving.latency import machine, threads, time_budget
from metaembed.serving.params import IndexLatencyParams
from metaembed.stage_outputs import BuiltIndex, IndexBudgetLatency, IndexLatency, SweepBudgets

TOKENS = "tokens"  # the sweep's one budget of a token-level model: every vector
PLOT = "latency_per_budget.png"
_DISPLAY_CHARS = 300


@dataclass(frozen=True)
class Corpus:
    """The evaluation's distinct candidates: full-size vectors, their mask, ids and what each shows."""

    vectors: torch.Tensor  # [N, R_c, D]
    mask: torch.Tensor  # [N, R_c]
    ids: list[str]
    display: dict[str, str]


def run_index_stage(params: ParamsRoot, progress: bool = True) -> IndexLatency:
    """Build, save and time the index; write latency.json, metrics and the plot; returns latency.json's content."""
    from metaembed.index import MultiVectorIndex, persist
    from metaembed.registry.digest import folder_sha256
    from metaembed.serving.sidecar import SIDECAR, sidecar_text
    from metaembed.timing import CpuProbe

    settings = params.index
    started = time.perf_counter()
    sweep = SweepBudgets.read(params.budgets_path)
    stores, cache_meta = cached_stores(params)
    corpus = evaluation_corpus(params.prepared_dir, stores["candidate"])
    digest = folder_sha256(params.model_dir)
    with threads(settings.latency.threads):
        began = time.perf_counter()
        index = MultiVectorIndex.build(corpus.vectors, corpus.mask, corpus.ids, dtype=settings.dtype,
                                       first_stage=settings.first_stage,
                                       first_stage_vectors=settings.first_stage_vectors,
                                       first_stage_pool=settings.first_stage_pool,
                                       meta=_meta(params, digest, cache_meta, stores, len(corpus.ids)))
        build_s = time.perf_counter() - began
        index.save(params.index_dir, sidecars={SIDECAR: sidecar_text("evaluation", params.prepared_dir,
                                                                     corpus.display)})
        queries, mask = sample_queries(stores["query"], settings.latency)
        probe = CpuProbe()
        rows = _measure(index, queries, mask, sweep, params, progress)
    built = BuiltIndex(path=str(params.index_dir), manifest_sha256=persist.sha256(params.index_dir / persist.MANIFEST),
                       candidates=len(index), vectors=index.dims[1], dim=index.dims[2], dtype=index.dtype,
                       first_stage=settings.first_stage, built_at=index.built_at, build_s=round(build_s, 2))
    result = IndexLatency(
        model_sha256=digest, sweep_run_id=sweep.mlflow_run_id, index=built, k=settings.k,
        first_stage_k=settings.first_stage_k if settings.first_stage else None, queries=len(queries),
        repeats=settings.latency.repeats, threads=settings.latency.threads, other_cores=probe.other_cores(),
        machine=machine(), budgets=rows,
    )
    _write_outputs(params, result, time.perf_counter() - started)
    return result


def cached_stores(params: ParamsRoot) -> tuple[dict[str, EmbeddingStore], dict]:
    """The embeddings `evaluate` cached for this model (as the sweep reads them)."""
    from metaembed.evaluation.encode import load_stores
    from metaembed.evaluation.stage import EMBEDDINGS_DIR, encoder_fingerprint

    cache_dir = Path(params.evaluate.out_dir) / EMBEDDINGS_DIR
    stores, meta = load_stores(cache_dir)
    if meta.get("encoder") != encoder_fingerprint(params.model_dir):
        raise ValueError(f"{cache_dir} holds embeddings of another model than {params.model_dir} (or older "
                         "encoding code): re-run `metaembed evaluate` (`dvc repro evaluate`) first")
    return stores, meta


def evaluation_corpus(prepared_dir: Path, store: EmbeddingStore) -> Corpus:
    """Every candidate the prepared evaluation sets ask for, in the order they are first asked for."""
    from metaembed.evaluation.quality import plan_suite
    from metaembed.evaluation.suite import load_prepared

    items = plan_suite(load_prepared(prepared_dir)).requests.items["candidate"]
    keys = list(items)
    try:
        store = store if store.keys == keys else store.select(keys)
    except KeyError as error:
        raise ValueError(f"{error.args[0]} (prepared data in {prepared_dir}); re-run `metaembed evaluate`") from None
    mask = torch.arange(store.vectors.shape[1])[None, :] < store.lengths[:, None]
    return Corpus(store.vectors, mask, keys, {key: display(side) for key, side in items.items()})


def display(side: Side) -> str:
    """What a search result shows for a candidate: its image's path and its text."""
    parts = [side.image.describe()] if side.image is not None else []
    if side.text.strip():
        parts.append(side.text[:_DISPLAY_CHARS])
    return " | ".join(parts)


def sample_queries(store: EmbeddingStore, settings: IndexLatencyParams) -> tuple[torch.Tensor, torch.Tensor]:
    """`settings.queries` cached queries drawn with `settings.seed` (all when there are fewer)."""
    count = min(settings.queries, len(store.keys))
    if count == 0:
        raise ValueError("the embedding cache holds no queries: re-run `metaembed evaluate`")
    rows = torch.randperm(len(store.keys), generator=torch.Generator().manual_seed(settings.seed))[:count].sort().values
    vectors, mask = store.take(rows)
    if mask is None:
        mask = torch.ones(vectors.shape[:2], dtype=torch.bool)
    return vectors.contiguous(), mask


def _measure(index, queries: torch.Tensor, mask: torch.Tensor, sweep: SweepBudgets, params: ParamsRoot,
             progress: bool) -> list[IndexBudgetLatency]:
    from tqdm import tqdm

    from metaembed.index import index_bytes_per_candidate

    settings = params.index
    first_stage_k = settings.first_stage_k if settings.first_stage else None
    rows = []
    for row in tqdm(sweep.budgets, desc="index: search latency", unit="budget", disable=not progress):
        budget = None if row.name == TOKENS else row.budget
        timed = time_budget(index, queries, mask, budget, settings.k, first_stage_k, settings.latency.repeats)
        rows.append(IndexBudgetLatency(
            name=row.name, r_q=row.r_q, r_c=row.r_c,
            index_bytes_per_candidate=index_bytes_per_candidate(index.dtype, row.r_c, index.dims[2]),
            exhaustive_ms=timed.exhaustive_ms, two_stage_ms=timed.two_stage_ms, recall_at_k=timed.recall_at_k,
        ))
    return rows


def _meta(params: ParamsRoot, digest: str, cache_meta: dict, stores: dict[str, EmbeddingStore],
          candidates: int) -> dict[str, str]:
    """The manifest's meta: what `metaembed search` needs to load the model, and the provenance."""
    pooling = str(cache_meta.get("pooling", ""))
    return {
        "model_uri": str(params.model_dir.resolve()),
        "model_sha256": digest,
        "model_pooling": pooling,
        "query_vectors": "" if pooling == TOKENS else str(stores["query"].vectors.shape[1]),
        "corpus_path": str(params.prepared_dir.resolve()),
        "layout": "evaluation",
        "candidates": str(candidates),
        "source": "the evaluate stage's embedding cache",
        "encoder": str(cache_meta.get("encoder", "")),
        "metaembed_version": __version__,
    }


def _write_outputs(params: ParamsRoot, result: IndexLatency, seconds: float) -> None:
    from metaembed.evaluation import plots

    out = params.index_latency_path.parent
    result.write(params.index_latency_path)
    rows = {row.name: _flat_row(row) for row in result.budgets}
    metrics = {"candidates": result.index.candidates, "dtype": result.index.dtype, "search": result.search,
               "k": result.k, "queries": result.queries, "build_s": result.index.build_s,
               "other_cores": result.other_cores, "seconds": round(seconds, 1), "budgets": rows}
    _write_json(out / "metrics.json", metrics)
    _write_json(out / "plot_data.json", [{"budget": name, **row} for name, row in rows.items()])
    figure = plots.index_latency_figure([row.model_dump() for row in result.budgets], result.index.candidates,
                                        result.k)
    plots.save(figure, out / PLOT)


def _flat_row(row: IndexBudgetLatency) -> dict:
    flat = {"r_q": row.r_q, "r_c": row.r_c, "index_bytes_per_candidate": row.index_bytes_per_candidate,
            "exhaustive_ms": row.exhaustive_ms, "two_stage_ms": row.two_stage_ms, "recall_at_k": row.recall_at_k}
    return {key: value for key, value in flat.items() if value is not None}  # DVC metrics are numbers


def _write_json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
