"""`metaembed bench index-quality`: what the index's storage dtype and its first stage cost in
retrieval quality, on the trained model's own evaluation embeddings (the `evaluate` stage's cache;
nothing is re-encoded).

    metaembed bench index-quality --output artifacts/bench/index_quality.json --plot artifacts/bench/index_quality.png

* Storage: every cached candidate vector goes through each storage dtype's codec (encode, then
  decode: exactly the float32 values the index scores), the queries as the index prepares them
  (binarised for binary), and the evaluation's own scoring gives MMEB P@1 and ViDoRe nDCG@5 at every
  budget of `evaluate.budgets`; each dtype is compared with bfloat16, the default served dtype.
* First stage: the evaluation corpus (every distinct candidate, as the `index` stage builds it) in an
  index with an HNSW (or flat) first stage over each candidate's first vector, and over its first
  m vectors for each m of `--first-stage-vectors` (first_stage.py); `--queries` cached queries
  searched at every budget exhaustively and two-stage at each first_stage_k; recall@10 is the share
  of the exhaustive top-10 the two-stage top-10 holds, and ms/query the two-stage search's time
  for the whole batch divided by its queries (it searches them one at a time).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaembed.benchmarks.outputs import write_report
from metaembed.markdown_table import markdown_table

if TYPE_CHECKING:
    from metaembed.config import ParamsRoot
    from metaembed.evaluation.encode import EmbeddingStore

METRICS = ("mmeb_p_at_1", "vidore_ndcg_at_5")
REFERENCE = "bfloat16"


@dataclass(frozen=True)
class Settings:
    dtypes: tuple[str, ...] = ("float32", "bfloat16", "int8", "binary")
    first_stage_ks: tuple[int, ...] = (64, 128, 256, 512, 1024)
    first_stage: str = "hnsw"
    first_stage_vectors: tuple[str, ...] = ("1",)  # m leading vectors each, or "mean"
    queries: int = 200
    seed: int = 0
    threads: int = 1


def configure(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    parser.add_argument("--params", default="params.yaml", help="params file (its evaluate, index and paths)")
    parser.add_argument("--dtypes", default=",".join(defaults.dtypes))
    parser.add_argument("--first-stage-ks", default=",".join(map(str, defaults.first_stage_ks)))
    parser.add_argument("--first-stage", choices=["hnsw", "flat"], default=defaults.first_stage)
    parser.add_argument("--first-stage-vectors", default=",".join(map(str, defaults.first_stage_vectors)),
                        help="comma-separated first stages: m leading candidate vectors in the ANN, or mean "
                             "(one mean vector per candidate), e.g. 1,mean,64")
    parser.add_argument("--queries", type=int, default=defaults.queries, help="cached queries for the recall")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="which queries are drawn")
    parser.add_argument("--threads", type=int, default=defaults.threads, help="torch and faiss threads")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG of quality and recall here")


def run(args: argparse.Namespace) -> int:
    from metaembed.config import load_root
    from metaembed.serving.latency import threads

    settings = Settings(tuple(args.dtypes.split(",")), tuple(int(k) for k in args.first_stage_ks.split(",")),
                        args.first_stage, tuple(args.first_stage_vectors.split(",")),
                        args.queries, args.seed, args.threads)
    with threads(settings.threads):
        report = benchmark(load_root(args.params), settings)
    print(quality_table(report))
    print()
    print(recall_table(report))
    write_report(report, args.output, args.plot, _save_figure)
    return 0


def benchmark(params: ParamsRoot, settings: Settings) -> dict[str, Any]:
    from metaembed.serving.stage import cached_stores

    stores, meta = cached_stores(params)
    return {"settings": asdict(settings), "model_dir": str(params.model_dir), "encoder": meta.get("encoder"),
            "quality": storage_quality(params, stores, settings.dtypes),
            "recall": first_stage_recall(params, stores, settings)}


def storage_quality(params: ParamsRoot, stores: dict[str, EmbeddingStore], dtypes: tuple[str, ...]
                    ) -> list[dict[str, Any]]:
    """Per dtype and budget: MMEB P@1, ViDoRe nDCG@5 and bytes per candidate."""
    from metaembed.evaluation.quality import plan_suite, score_stores, scoring_budgets
    from metaembed.evaluation.suite import load_prepared
    from metaembed.index import index_bytes_per_candidate

    plan = plan_suite(load_prepared(params.prepared_dir))
    budgets = scoring_budgets(params.model.pooling, params.evaluate.budgets, stores["query"].vectors.shape[1],
                              stores["candidate"].vectors.shape[1])
    rows = []
    for dtype in dtypes:
        coded = {"query": stored_as(stores["query"], dtype, "query"),
                 "candidate": stored_as(stores["candidate"], dtype, "candidate")}
        report = score_stores(plan, coded, budgets, params.evaluate.recall_at, progress=False)
        for name, budget in budgets.items():
            r_c = budget[1] if budget else round(stores["candidate"].mean_length())
            rows.append({"dtype": dtype, "budget": name, **{m: report.summary[name].get(m) for m in METRICS},
                         "bytes_per_candidate": index_bytes_per_candidate(dtype, r_c, stores["candidate"].dim)})
    return _with_differences(rows)


def stored_as(store: EmbeddingStore, dtype: str, side: str) -> EmbeddingStore:
    """The store as the index scores it: candidates decoded from `dtype`'s codes, queries as
    `codecs.prepare_queries` hands them to the scoring."""
    from metaembed.evaluation.encode import EmbeddingStore
    from metaembed.index import codecs

    vectors = store.vectors.float()
    if side == "query":
        vectors = codecs.prepare_queries(dtype, vectors)
    else:
        codes, scales = codecs.encode(dtype, vectors.contiguous())
        vectors = codecs.decode(dtype, codes, scales, store.dim)
    return EmbeddingStore(store.keys, vectors, store.lengths)


def first_stage_recall(params: ParamsRoot, stores: dict[str, EmbeddingStore], settings: Settings
                       ) -> list[dict[str, Any]]:
    """Per budget and first_stage_k: recall@10 of the exhaustive top-10 on the evaluation corpus."""
    from metaembed.index import MultiVectorIndex
    from metaembed.serving.latency import recall
    from metaembed.serving.params import IndexLatencyParams
    from metaembed.serving.stage import evaluation_corpus, sample_queries

    corpus = evaluation_corpus(params.prepared_dir, stores["candidate"])
    queries, mask = sample_queries(stores["query"], IndexLatencyParams(queries=settings.queries, seed=settings.seed))
    rows = []
    for vectors in settings.first_stage_vectors:
        began = time.perf_counter()
        pool = "mean" if vectors == "mean" else "first"
        index = MultiVectorIndex.build(corpus.vectors, corpus.mask, corpus.ids, dtype=params.index.dtype,
                                       first_stage=settings.first_stage, first_stage_pool=pool,
                                       first_stage_vectors=1 if pool == "mean" else int(vectors))
        build_s = time.perf_counter() - began
        for r_q, r_c in params.evaluate.budgets:
            _, exact = index.search(queries, mask, (r_q, r_c), k=10)
            for first_stage_k in settings.first_stage_ks:
                began = time.perf_counter()
                _, found = index.search(queries, mask, (r_q, r_c), k=10, first_stage_k=first_stage_k)
                ms = 1e3 * (time.perf_counter() - began) / len(queries)
                rows.append({"first_stage_vectors": vectors, "budget": f"{r_q}x{r_c}", "first_stage_k": first_stage_k,
                             "candidates": len(corpus.ids), "queries": len(queries), "build_s": build_s,
                             "recall_at_10": recall(exact, found), "ms_per_query": ms})
    return rows


def _with_differences(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row's metric minus bfloat16's at the same budget, in points (None without a reference)."""
    reference = {row["budget"]: row for row in rows if row["dtype"] == REFERENCE}
    for row in rows:
        base = reference.get(row["budget"])
        for metric in METRICS:
            present = base is not None and row[metric] is not None and base[metric] is not None
            row[f"{metric}_vs_{REFERENCE}_points"] = 100 * (row[metric] - base[metric]) if present else None
    return rows


def quality_table(report: dict[str, Any]) -> str:
    header = ["dtype", "budget", "MMEB P@1 %", f"vs {REFERENCE}", "ViDoRe nDCG@5 %", f"vs {REFERENCE}",
              "bytes/candidate"]
    lines = [[row["dtype"], row["budget"], *[cell for metric in METRICS for cell in _cells(row, metric)],
              f"{row['bytes_per_candidate']:,}"] for row in report["quality"]]
    return markdown_table(header, lines)


def recall_table(report: dict[str, Any]) -> str:
    """recall@10 (ms/query) per first-stage vectors and budget, one column per first_stage_k."""
    rows = report["recall"]
    ks = list(dict.fromkeys(row["first_stage_k"] for row in rows))
    keys = list(dict.fromkeys((row["first_stage_vectors"], row["budget"]) for row in rows))
    cell = {(row["first_stage_vectors"], row["budget"], row["first_stage_k"]): row for row in rows}
    header = ["first stage", "budget", *[f"k'={k}: recall@10 (ms)" for k in ks]]
    return markdown_table(header, [
        [str(m), b, *[f"{cell[m, b, k]['recall_at_10']:.3f} ({cell[m, b, k]['ms_per_query']:.1f})" for k in ks]]
        for m, b in keys])


def report_figure(report: dict[str, Any]):
    """MMEB P@1 and ViDoRe nDCG@5 against the budget per dtype; recall@10 against first_stage_k."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(15, 4.2), layout="constrained")
    axes = figure.subplots(1, 3)
    for ax, metric, title in zip(axes, METRICS, ("MMEB P@1", "ViDoRe nDCG@5")):
        for dtype in dict.fromkeys(row["dtype"] for row in report["quality"]):
            rows = [row for row in report["quality"] if row["dtype"] == dtype]
            ax.plot([row["budget"] for row in rows], [row[metric] for row in rows], marker="o", label=dtype)
        ax.set_xlabel("budget (r_q x r_c)")
        ax.set_title(f"{title} by storage dtype")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    recall = axes[2]
    for m, budget in dict.fromkeys((row["first_stage_vectors"], row["budget"]) for row in report["recall"]):
        rows = [row for row in report["recall"] if row["budget"] == budget and row["first_stage_vectors"] == m]
        recall.plot([row["first_stage_k"] for row in rows], [row["recall_at_10"] for row in rows], marker="o",
                    linestyle="-" if m == "1" else ":" if m == "mean" else "--", label=f"{budget}, first stage {m}")
    recall.set_xscale("log", base=2)
    recall.set_ylim(0, 1.02)
    recall.set_xlabel("first_stage_k")
    recall.set_title(f"two-stage recall@10, {report['recall'][0]['candidates']:,} candidates")
    recall.grid(alpha=0.3)
    recall.legend(fontsize=8)
    return figure


def _cells(row: dict[str, Any], metric: str) -> list[str]:
    value, difference = row[metric], row[f"{metric}_vs_{REFERENCE}_points"]
    return ["-" if value is None else f"{100 * value:.1f}", "-" if difference is None else f"{difference:+.1f}"]


def _save_figure(report: dict[str, Any], path: Path) -> None:
    from metaembed.evaluation import plots

    plots.save(report_figure(report), path)
