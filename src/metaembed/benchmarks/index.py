"""Index search latency, exhaustive against two-stage, and the two-stage's recall of the exhaustive
top-10, on a clustered synthetic index (metaembed.index.synthetic).

    python -m metaembed.benchmarks.index --num-candidates 100000 --threads 1 --output index.json

Per dtype it builds one index (the data generated and added in chunks, so no float32 copy of the
whole set is held), then per budget:

* exhaustive latency: median seconds of single-query searches (B = 1) over `--latency-queries`
  queries, after the batched exhaustive search below has touched the index once;
* two-stage latency and recall@10: every one of `--queries` queries searched alone with each
  first_stage_k; recall is the share of the exhaustive top-10 (one batched exhaustive search)
  that the two-stage top-10 holds.

The HNSW first stage depends on the first vectors only, not on the rerank dtype, so the indexes
of the other dtypes reuse the first one's graph instead of building their own (a 100k x 128
build took ~30-40 s on the shared 2-core machine). Timings are medians on whatever else the machine runs: the load other
processes put on the cores meanwhile is reported beside them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaembed.markdown_table import markdown_table
from metaembed.timing import CpuProbe

if TYPE_CHECKING:
    import torch

    from metaembed.index import MultiVectorIndex

Budget = tuple[int, int]
_CHUNK_ROWS = 10_000


@dataclass(frozen=True)
class Settings:
    num_candidates: int = 100_000
    num_vectors: int = 64
    dim: int = 128
    clusters: int = 500
    dtypes: tuple[str, ...] = ("bfloat16", "int8")
    budgets: tuple[Budget, ...] = ((1, 1), (4, 8), (16, 64))
    first_stage_ks: tuple[int, ...] = (64, 256, 1024)
    queries: int = 10
    latency_queries: int = 3
    seed: int = 0


def configure(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    parser.add_argument("--num-candidates", "-n", type=int, default=defaults.num_candidates)
    parser.add_argument("--num-vectors", type=int, default=defaults.num_vectors, help="R_c (and R_q)")
    parser.add_argument("--dim", "-d", type=int, default=defaults.dim)
    parser.add_argument("--dtypes", default=",".join(defaults.dtypes))
    parser.add_argument("--budgets", default="1x1,4x8,16x64", help="comma-separated r_q x r_c")
    parser.add_argument("--first-stage-ks", default="64,256,1024")
    parser.add_argument("--queries", type=int, default=defaults.queries,
                        help="queries for two-stage latency and recall")
    parser.add_argument("--latency-queries", type=int, default=defaults.latency_queries,
                        help="single-query exhaustive searches timed per budget")
    parser.add_argument("--threads", type=int, default=None, help="torch and faiss threads")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")


def run(args: argparse.Namespace) -> int:
    if args.threads is not None:
        import faiss
        import torch

        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
    settings = Settings(
        num_candidates=args.num_candidates, num_vectors=args.num_vectors, dim=args.dim,
        dtypes=tuple(args.dtypes.split(",")),
        budgets=tuple(tuple(int(r) for r in b.split("x")) for b in args.budgets.split(",")),
        first_stage_ks=tuple(int(k) for k in args.first_stage_ks.split(",")),
        queries=args.queries, latency_queries=args.latency_queries, seed=args.seed,
    )
    report = benchmark(settings)
    print(report_table(report))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def benchmark(settings: Settings) -> dict[str, Any]:
    import torch

    from metaembed.index import synthetic

    topics = synthetic.topics(settings.num_candidates, settings.dim, settings.clusters, settings.seed)
    targets = torch.randint(0, settings.num_candidates, (settings.queries,),
                            generator=torch.Generator().manual_seed(settings.seed + 1))
    queries = synthetic.vectors_around(topics[targets], settings.num_vectors, settings.seed + 2)
    probe = CpuProbe()
    indexes, build_s = _build(settings, topics)
    rows = []
    for dtype, index in indexes.items():
        for budget in settings.budgets:
            rows.extend(_measure(index, dtype, budget, queries, settings))
    return {"settings": asdict(settings), "threads": torch.get_num_threads(), "build_s": build_s,
            "other_cores_whole_run": probe.other_cores(), "results": rows}


def report_table(report: dict[str, Any]) -> str:
    header = ["dtype", "budget", "search", "ms/query", "recall@10", "other cores busy"]
    lines = [[r["dtype"], f"({r['budget'][0]}, {r['budget'][1]})", r["search"], f"{r['ms_per_query']:.1f}",
              "" if r["recall_at_10"] is None else f"{r['recall_at_10']:.3f}",
              "" if r["other_cores"] is None else f"{r['other_cores']:.1f}"] for r in report["results"]]
    return markdown_table(header, lines)


def _build(settings: Settings, topics: torch.Tensor) -> tuple[dict[str, MultiVectorIndex], dict[str, float]]:
    from metaembed.index import MultiVectorIndex, synthetic

    indexes: dict[str, MultiVectorIndex] = {}
    seconds = {dtype: 0.0 for dtype in settings.dtypes}
    for start in range(0, settings.num_candidates, _CHUNK_ROWS):
        chunk = synthetic.vectors_around(topics[start:start + _CHUNK_ROWS], settings.num_vectors,
                                         settings.seed + 3 + start)
        ids = synthetic.row_ids(len(chunk), start)
        for position, dtype in enumerate(settings.dtypes):
            began = time.perf_counter()
            if dtype not in indexes:
                first_stage = "hnsw" if position == 0 else None
                indexes[dtype] = MultiVectorIndex.build(chunk, None, ids, dtype=dtype, first_stage=first_stage)
            else:
                indexes[dtype].add(chunk, None, ids)
            seconds[dtype] += time.perf_counter() - began
    _share_first_stage(indexes)
    return indexes, seconds


def _share_first_stage(indexes: dict[str, MultiVectorIndex]) -> None:
    first, *others = indexes.values()
    for index in others:
        index._ann, index._settings = first._ann, first._settings  # see the module docstring


def _measure(index: MultiVectorIndex, dtype: str, budget: Budget, queries: torch.Tensor,
             settings: Settings) -> list[dict[str, Any]]:
    _, exact = index.search(queries, None, budget, k=10)  # also touches every page once
    singles = [queries[i:i + 1] for i in range(len(queries))]
    rows = [_row(dtype, budget, "exhaustive", None,
                 *_timed(lambda q: index.search(q, None, budget, k=10), singles[: settings.latency_queries]))]
    for first_stage_k in settings.first_stage_ks:
        found: list[list[str]] = []

        def two_stage(q: torch.Tensor, fsk: int = first_stage_k) -> None:
            found.extend(index.search(q, None, budget, k=10, first_stage_k=fsk)[1])

        seconds, others = _timed(two_stage, singles)
        recall = sum(len(set(a) & set(b)) for a, b in zip(exact, found)) / (10 * len(exact))
        rows.append(_row(dtype, budget, f"two-stage k'={first_stage_k}", recall, seconds, others))
    return rows


def _timed(search: Callable[[torch.Tensor], object], singles: list[torch.Tensor]) -> tuple[float, float | None]:
    """Median seconds per single-query search, and the cores others used over the whole run."""
    probe = CpuProbe()
    times = []
    for query in singles:
        began = time.perf_counter()
        search(query)
        times.append(time.perf_counter() - began)
    return statistics.median(times), probe.other_cores()


def _row(dtype: str, budget: Budget, search: str, recall: float | None, seconds: float,
         others: float | None) -> dict[str, Any]:
    return {"dtype": dtype, "budget": list(budget), "search": search, "ms_per_query": seconds * 1e3,
            "recall_at_10": recall, "other_cores": others}


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    configure(_parser)
    raise SystemExit(run(_parser.parse_args()))
