"""`metaembed bench index`: search latency, exhaustive against two-stage, the two-stage's recall of
the exhaustive top-10, and what an index of N candidates costs to hold and open, on a clustered
synthetic index (metaembed.index.synthetic).

    metaembed bench index --num-candidates 100000 --threads 1 --output index.json --plot index.png
    metaembed bench index -n 1000000 --dtypes bfloat16 --save-dir /tmp/bench-index ...

One dtype at a time (so only one index is in memory at once) it builds the index, generating the
data in chunks (no float32 copy of the whole set is ever held); with `--save-dir` it saves the index,
drops it, and opens the saved folder memory-mapped (the open is timed, median of 3, on a warm page
cache) so every search below reads the mmap-opened index as a service would. Then per budget:

* exhaustive: median seconds of single-query searches (B = 1) over `--latency-queries` queries,
  after one batched exhaustive search (the recall reference) has touched every page; beside it
  the roofline of this machine, max(FLOPs / float32 matmul rate, stored bytes / read bandwidth),
  both measured in the same run (metaembed.benchmarks.scoring): the index decodes each block to
  float32 before its matmul;
* two-stage, per first_stage_k: median single-query latency over `--queries` queries and recall@10,
  the share of the exhaustive top-10 the two-stage top-10 holds.

The HNSW first stage depends on the first vectors only, not on the rerank dtype, so the later
dtypes reuse the first one's graph instead of building their own. Timings are medians on whatever
else the machine runs: the cores other processes kept busy are reported beside them. The peak
resident memory of the process is reported too (a memory-mapped index counts the pages it touched).
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaembed.benchmarks.outputs import write_report
from metaembed.markdown_table import markdown_table
from metaembed.timing import CpuProbe

if TYPE_CHECKING:
    import torch

    from metaembed.index import MultiVectorIndex

Budget = tuple[int, int]
_CHUNK_ROWS = 10_000
_OPENS = 3


@dataclass(frozen=True)
class Settings:
    num_candidates: int = 100_000
    num_vectors: int = 64
    dim: int = 128
    clusters: int = 500
    dtypes: tuple[str, ...] = ("bfloat16", "int8")
    budgets: tuple[Budget, ...] = ((1, 1), (2, 4), (4, 8), (8, 16), (16, 64))
    first_stage_ks: tuple[int, ...] = (64, 256, 512, 1024)
    queries: int = 10
    latency_queries: int = 3
    ef_construction: int = 80
    first_stage_vectors: int = 1
    first_stage_pool: str = "first"
    seed: int = 0
    save_dir: str | None = None


def configure(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    parser.add_argument("--num-candidates", "-n", type=int, default=defaults.num_candidates)
    parser.add_argument("--num-vectors", type=int, default=defaults.num_vectors, help="R_c (and R_q)")
    parser.add_argument("--dim", "-d", type=int, default=defaults.dim)
    parser.add_argument("--dtypes", default=",".join(defaults.dtypes))
    parser.add_argument("--budgets", default=",".join(f"{q}x{c}" for q, c in defaults.budgets),
                        help="comma-separated r_q x r_c")
    parser.add_argument("--first-stage-ks", default=",".join(map(str, defaults.first_stage_ks)))
    parser.add_argument("--queries", type=int, default=defaults.queries,
                        help="queries for two-stage latency and recall")
    parser.add_argument("--latency-queries", type=int, default=defaults.latency_queries,
                        help="single-query exhaustive searches timed per budget")
    parser.add_argument("--ef-construction", type=int, default=defaults.ef_construction,
                        help="HNSW build beam (lower builds a 1M graph faster)")
    parser.add_argument("--first-stage-vectors", type=int, default=defaults.first_stage_vectors,
                        help="each candidate's leading vectors in the HNSW first stage (metaembed.index.first_stage)")
    parser.add_argument("--first-stage-pool", choices=["first", "mean"], default=defaults.first_stage_pool,
                        help="mean: one mean vector per candidate in the first stage")
    parser.add_argument("--clusters", type=int, default=defaults.clusters,
                        help="topic clusters: fewer per candidate count make near neighbours harder to tell apart")
    parser.add_argument("--save-dir", type=Path, default=None,
                        help="save each index here and search the memory-mapped copy (times the open)")
    parser.add_argument("--threads", type=int, default=None, help="torch and faiss threads while searching")
    parser.add_argument("--build-threads", type=int, default=None,
                        help="torch and faiss threads while building (default: --threads)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG of latency and recall here")


def run(args: argparse.Namespace) -> int:
    from metaembed.benchmarks.scoring import parse_budgets

    settings = Settings(
        num_candidates=args.num_candidates, num_vectors=args.num_vectors, dim=args.dim, clusters=args.clusters,
        first_stage_vectors=args.first_stage_vectors, first_stage_pool=args.first_stage_pool, dtypes=tuple(args.dtypes.split(",")), budgets=parse_budgets(args.budgets),
        first_stage_ks=tuple(int(k) for k in args.first_stage_ks.split(",")),
        queries=args.queries, latency_queries=args.latency_queries, ef_construction=args.ef_construction,
        seed=args.seed, save_dir=None if args.save_dir is None else str(args.save_dir),
    )
    build_threads = args.build_threads if args.build_threads is not None else args.threads
    report = benchmark(settings, args.threads, build_threads)
    print(report_table(report))
    write_report(report, args.output, args.plot, _save_figure)
    return 0


def benchmark(settings: Settings, threads: int | None = None, build_threads: int | None = None) -> dict[str, Any]:
    import torch

    from metaembed.index import synthetic

    topics = synthetic.topics(settings.num_candidates, settings.dim, settings.clusters, settings.seed)
    targets = torch.randint(0, settings.num_candidates, (settings.queries,),
                            generator=torch.Generator().manual_seed(settings.seed + 1))
    queries = synthetic.vectors_around(topics[targets], settings.num_vectors, settings.seed + 2)
    probe = CpuProbe()
    with _threads(threads):
        roofline = _roofline()
    rows, build_s, opened, shared = [], {}, {}, None
    for dtype in settings.dtypes:
        with _threads(build_threads):
            index, build_s[dtype] = _build(settings, topics, dtype, shared)
        shared = shared or (index._ann, index._settings)
        if settings.save_dir is not None:
            index, opened[dtype] = _reopen(index, Path(settings.save_dir) / dtype)
        with _threads(threads):
            for budget in settings.budgets:
                rows.extend(_measure(index, dtype, budget, queries, settings, roofline))
        del index
    return {"settings": asdict(settings), "threads": torch.get_num_threads() if threads is None else threads,
            "build_threads": build_threads, "build_s": build_s, "opened": opened, "roofline": roofline,
            "peak_rss_gib": _peak_rss_gib(), "other_cores_whole_run": probe.other_cores(), "results": rows}


def report_table(report: dict[str, Any]) -> str:
    header = ["dtype", "budget", "search", "ms/query", "x roofline", "recall@10", "bytes/candidate",
              "other cores busy"]
    lines = [[r["dtype"], f"({r['budget'][0]}, {r['budget'][1]})", r["search"], f"{r['ms_per_query']:.1f}",
              "" if r["x_roofline"] is None else f"{r['x_roofline']:.1f}",
              "" if r["recall_at_10"] is None else f"{r['recall_at_10']:.3f}", f"{r['bytes_per_candidate']:,}",
              "" if r["other_cores"] is None else f"{r['other_cores']:.1f}"] for r in report["results"]]
    return markdown_table(header, lines)


def report_figure(report: dict[str, Any]):
    """Left: ms per query against the budget, exhaustive and each first_stage_k, per dtype (log).
    Right: two-stage recall@10 against first_stage_k, one line per budget (first dtype)."""
    from matplotlib.figure import Figure

    rows = report["results"]
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    figure = Figure(figsize=(12, 4.4), layout="constrained")
    latency, recall = figure.subplots(1, 2)
    for dtype in dtypes:
        for search in dict.fromkeys(r["search"] for r in rows):
            picked = [r for r in rows if r["dtype"] == dtype and r["search"] == search]
            latency.plot([_name(r["budget"]) for r in picked], [r["ms_per_query"] for r in picked], marker=".",
                         linestyle="-" if search == "exhaustive" else "--", label=f"{dtype} {search}")
    latency.set_yscale("log")
    latency.set_xlabel("budget (r_q x r_c)")
    latency.set_ylabel("ms per query (median, B = 1)")
    latency.set_title(f"{report['settings']['num_candidates']:,} clustered candidates")
    latency.legend(fontsize=7)
    latency.grid(alpha=0.3, which="both")
    for budget in dict.fromkeys(_name(r["budget"]) for r in rows):
        picked = [r for r in rows if r["dtype"] == dtypes[0] and _name(r["budget"]) == budget
                  and r["first_stage_k"] is not None]
        recall.plot([r["first_stage_k"] for r in picked], [r["recall_at_10"] for r in picked], marker="o", label=budget)
    recall.set_xscale("log", base=2)
    recall.set_xlabel("first_stage_k (shortlist per query)")
    recall.set_ylabel("recall@10 of the exhaustive top-10")
    recall.set_ylim(0, 1.02)
    recall.set_title(f"two-stage recall ({dtypes[0]})")
    recall.legend(fontsize=8)
    recall.grid(alpha=0.3)
    return figure


def _build(settings: Settings, topics: torch.Tensor, dtype: str, shared: tuple | None
           ) -> tuple[MultiVectorIndex, float]:
    """The index of every candidate, built chunk by chunk; seconds spent in build/add (not in
    generating the data). `shared`: another dtype's (faiss index, settings) to reuse."""
    from tqdm import tqdm

    from metaembed.index import MultiVectorIndex, synthetic

    index, seconds = None, 0.0
    for start in tqdm(range(0, settings.num_candidates, _CHUNK_ROWS), desc=f"build {dtype}", unit="chunk"):
        chunk = synthetic.vectors_around(topics[start:start + _CHUNK_ROWS], settings.num_vectors,
                                         settings.seed + 3 + start)
        ids = synthetic.row_ids(len(chunk), start)
        began = time.perf_counter()
        if index is None:
            index = MultiVectorIndex.build(chunk, None, ids, dtype=dtype, first_stage=None if shared else "hnsw",
                                           ef_construction=settings.ef_construction,
                                           first_stage_vectors=settings.first_stage_vectors,
                                           first_stage_pool=settings.first_stage_pool)
        else:
            index.add(chunk, None, ids)
        seconds += time.perf_counter() - began
    if shared is not None:
        index._ann, index._settings = shared  # see the module docstring
    return index, seconds


def _reopen(index: MultiVectorIndex, folder: Path) -> tuple[MultiVectorIndex, dict[str, Any]]:
    """Save `index` to `folder`, drop it, and open the saved copy memory-mapped."""
    from metaembed.index import MultiVectorIndex

    began = time.perf_counter()
    index.save(folder)
    save_s = time.perf_counter() - began
    del index
    opens = []
    for _ in range(_OPENS):
        began = time.perf_counter()
        loaded = MultiVectorIndex.load(folder, mmap=True)
        opens.append(time.perf_counter() - began)
    folder_bytes = sum(path.stat().st_size for path in folder.iterdir())
    return loaded, {"save_s": save_s, "open_s": statistics.median(opens), "opens_s": opens,
                    "folder_bytes": folder_bytes}


def _measure(index: MultiVectorIndex, dtype: str, budget: Budget, queries: torch.Tensor,
             settings: Settings, roofline: dict[str, float]) -> list[dict[str, Any]]:
    from metaembed.index import index_bytes_per_candidate

    n, dim = settings.num_candidates, settings.dim
    stored = index_bytes_per_candidate(dtype, budget[1], dim)
    _, exact = index.search(queries, None, budget, k=10)  # also touches every page once
    singles = [queries[i:i + 1] for i in range(len(queries))]
    seconds, others = _timed(lambda q: index.search(q, None, budget, k=10), singles[: settings.latency_queries])
    floor_s = max(n * budget[0] * budget[1] * 2 * dim / (roofline["matmul_gflops"] * 1e9),
                  n * stored / (roofline["read_gbps"] * 1e9))
    rows = [_row(dtype, budget, None, None, seconds, others, stored, seconds / floor_s)]
    for first_stage_k in settings.first_stage_ks:
        found: list[list[str]] = []

        def two_stage(q: torch.Tensor, fsk: int = first_stage_k) -> None:
            found.extend(index.search(q, None, budget, k=10, first_stage_k=fsk)[1])

        seconds, others = _timed(two_stage, singles)
        recall = sum(len(set(a) & set(b)) for a, b in zip(exact, found)) / (10 * len(exact))
        rows.append(_row(dtype, budget, first_stage_k, recall, seconds, others, stored, None))
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


def _row(dtype: str, budget: Budget, first_stage_k: int | None, recall: float | None, seconds: float,
         others: float | None, stored: int, x_roofline: float | None) -> dict[str, Any]:
    search = "exhaustive" if first_stage_k is None else f"two-stage k'={first_stage_k}"
    return {"dtype": dtype, "budget": list(budget), "search": search, "first_stage_k": first_stage_k,
            "ms_per_query": seconds * 1e3, "recall_at_10": recall, "bytes_per_candidate": stored,
            "x_roofline": x_roofline, "other_cores": others}


def _roofline() -> dict[str, float]:
    """float32 matmul GFLOP/s and read GB/s of this machine, as `bench scoring` measures them."""
    import torch

    from metaembed.benchmarks.scoring import measure_bandwidth, measure_matmul_gflops

    read_gbps, _ = measure_bandwidth(256, repeats=3)
    return {"matmul_gflops": measure_matmul_gflops(torch.float32, (1024, 2048), repeats=3), "read_gbps": read_gbps}


def _threads(count: int | None) -> contextlib.AbstractContextManager:
    """torch and faiss on `count` threads inside the block (None: as they are)."""
    from metaembed.serving.latency import threads

    return contextlib.nullcontext() if count is None else threads(count)


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _name(budget: list[int]) -> str:
    return f"{budget[0]}x{budget[1]}"


def _save_figure(report: dict[str, Any], path: Path) -> None:
    from metaembed.evaluation import plots

    plots.save(report_figure(report), path)
