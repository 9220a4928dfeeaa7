"""PLAID (fast-plaid) over the same multi-vector embeddings as MultiVectorIndex: recall@10 against
the exact MaxSim top-10, single-query latency, build seconds and bytes per document.

Runs in its own environment (fast-plaid pins an exact torch release, see docs/index.md "Beside
PLAID"), so it imports neither `metaembed` nor the project's venv; it reads the embeddings from a
file written by `scripts/plaid_export.py`:

    flock /tmp/cpu.lock nice -n 5 /work/plaidenv/bin/python scripts/plaid_compare.py \
        /tmp/plaidrun/synthetic.safetensors --work /tmp/plaid-work --output artifacts/plaid/plaid_synthetic.json

Input (safetensors): `candidates.vectors` float32 [N, R_c, D] (L2-normalised, padding after each
row's real vectors), `candidates.lengths` int64 [N], `queries.vectors` [B, R_q, D],
`queries.lengths` [B]. Each document given to PLAID is its real vectors, each query likewise.

Per nbits (default 2 and 4) it builds one index. The k-means centroids depend on the vectors and the
seed only, not on nbits, so they are computed once and reused (the build seconds of each nbits count
the k-means once plus its own compression). Per search setting (n_ivf_probe, n_full_scores) every
query is searched alone (B = 1) on `--threads` threads (torch, OpenMP and rayon); the median of
those times is the latency, and recall@10 is the share of the exact top-10 found in PLAID's top-10.

`--tables A.json B.json ...` prints the rows of several result files (this script's and
`scripts/plaid_ours.py`'s share a row format) as one markdown table instead.

`exact_top_k` and `load_sets` are imported by `plaid_ours.py`, so both sides rank against the
same reference computed by the same code; keep this module free of metaembed and of fast-plaid at
import time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# (n_ivf_probe, n_full_scores); fast-plaid's defaults are (8, 4096).
DEFAULT_SETTINGS = "8x64,8x256,32x1024,8x4096"
K = 10


def load_inputs(path: str | Path) -> dict[str, Any]:
    """The four tensors of an exported file, plus its string metadata under "meta"."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    for name in ("candidates.vectors", "candidates.lengths", "queries.vectors", "queries.lengths"):
        if name not in tensors:
            raise SystemExit(f"{path}: no tensor {name!r}; write the file with scripts/plaid_export.py")
    return {**tensors, "meta": dict(meta)}


def load_sets(path: str | Path, queries: int | None) -> tuple[Any, Any, Any, Any, dict[str, str]]:
    """(candidate vectors, their lengths, query vectors, their lengths, the file's metadata), with
    the first `queries` queries only (None: all)."""
    data = load_inputs(path)
    qry, qry_len = data["queries.vectors"], data["queries.lengths"]
    if queries is not None:
        qry, qry_len = qry[:queries], qry_len[:queries]
    return data["candidates.vectors"], data["candidates.lengths"], qry, qry_len, data["meta"]


def exact_top_k(candidates, candidate_lengths, queries, query_lengths, k: int = K,
                chunk_rows: int = 2048) -> list[list[int]]:
    """Exact MaxSim top-k rows per query, float32: sum over a query's real vectors of the max over a
    candidate's real vectors of the dot product; ties by row order (stable sort)."""
    import torch

    num_rows, width, _ = candidates.shape
    real = torch.arange(width)[None, :] < candidate_lengths[:, None]  # [N, R_c]
    found = []
    with torch.inference_mode():
        for query, length in zip(queries, query_lengths.tolist()):
            query = query[:length].to(torch.float32)
            scores = torch.empty(num_rows)
            for start in range(0, num_rows, chunk_rows):
                block = candidates[start:start + chunk_rows].to(torch.float32)
                sims = torch.einsum("qd,nrd->nqr", query, block)
                sims = sims.masked_fill(~real[start:start + chunk_rows, None, :], float("-inf"))
                scores[start:start + len(block)] = sims.amax(dim=2).sum(dim=1)
            order = torch.sort(scores, descending=True, stable=True).indices[:k]
            found.append(order.tolist())
    return found


def recall(exact: list[list[int]], found: list[list[int]], k: int = K) -> float:
    return sum(len(set(e[:k]) & set(f[:k])) for e, f in zip(exact, found)) / (k * len(exact))


def folder_bytes(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, int]:
    """Bytes of each file under `folder` (relative name -> size), lock files and `skip` left out."""
    sizes = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.endswith(".lock") and path.name not in skip:
            sizes[str(path.relative_to(folder))] = path.stat().st_size
    return sizes


def timed_queries(search, queries: list, warmup: int = 3) -> tuple[list[list[int]], float, float, float]:
    """Run `search(query) -> ids` on each query alone; returns the ids, the median and p90 wall
    milliseconds, and CPU seconds per wall second over the timed loop (1.0 = one busy thread)."""
    for query in queries[:warmup]:
        search(query)
    found, times = [], []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for query in queries:
        began = time.perf_counter()
        found.append(search(query))
        times.append(time.perf_counter() - began)
    cpu_ratio = (time.process_time() - cpu0) / max(time.perf_counter() - wall0, 1e-9)
    times_ms = sorted(t * 1e3 for t in times)
    p90 = times_ms[min(len(times_ms) - 1, int(round(0.9 * (len(times_ms) - 1))))]
    return found, statistics.median(times_ms), p90, cpu_ratio


def row(system: str, storage: str, setting: str, recall_at_10: float, ms: float | None, p90: float | None,
        cpu_ratio: float | None,
        bytes_per_doc: float, build_s: float | None, **extra: Any) -> dict[str, Any]:
    return {"system": system, "storage": storage, "setting": setting, "recall_at_10": recall_at_10,
            "ms_per_query": ms, "ms_p90": p90, "cpu_per_wall": cpu_ratio, "bytes_per_doc": bytes_per_doc,
            "build_s": build_s, **extra}


def markdown(rows: list[dict[str, Any]]) -> str:
    header = ["set", "system", "storage", "search setting", "recall@10", "ms/query (median)", "p90 ms",
              "bytes/doc", "build s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append("| " + " | ".join([
            r.get("set", ""), r["system"], r["storage"], r["setting"], f"{r['recall_at_10']:.3f}",
            _num(r["ms_per_query"]), _num(r["ms_p90"]), f"{r['bytes_per_doc']:,.0f}",
            "" if r["build_s"] is None else f"{r['build_s']:.1f}",
        ]) + " |")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def run_plaid(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    from fast_plaid import search as fp_search
    from fast_plaid.search import fast_plaid as fp_module

    cand, cand_len, qry, qry_len, meta = load_sets(args.input, args.queries)
    num_docs, width, dim = cand.shape
    documents = [cand[i, :int(n)].to(torch.float32).contiguous() for i, n in enumerate(cand_len.tolist())]
    queries = [qry[i, :int(n)].to(torch.float32).contiguous() for i, n in enumerate(qry_len.tolist())]

    began = time.perf_counter()
    exact = exact_top_k(cand, cand_len, qry, qry_len)
    exact_s = time.perf_counter() - began
    print(f"exact MaxSim top-{K} of {len(queries)} queries over {num_docs} documents: {exact_s:.1f} s", flush=True)

    # k-means once, reused by every nbits (create() calls the module-level compute_kmeans).
    original_kmeans = fp_module.compute_kmeans
    cached: dict[str, Any] = {}

    def kmeans_once(**kwargs):
        if "centroids" not in cached:
            began = time.perf_counter()
            cached["centroids"] = original_kmeans(**kwargs)
            cached["seconds"] = time.perf_counter() - began
        return cached["centroids"]

    fp_module.compute_kmeans = kmeans_once
    rows = []
    indexes = {}
    work = Path(args.work)
    for nbits in args.nbits:
        folder = work / f"nbits{nbits}"
        built = work / f"nbits{nbits}.build.json"
        if args.reuse and built.is_file() and (folder / "metadata.json").is_file():
            info = json.loads(built.read_text())
            if info.get("input") != str(Path(args.input).resolve()):
                raise SystemExit(f"{folder} was built from {info.get('input')}, not {args.input}; drop --reuse")
            index = fp_search.FastPlaid(index=str(folder), device="cpu")
            print(f"nbits={nbits}: reusing {folder} (built in {info['build_s']:.1f} s)", flush=True)
        else:
            if folder.exists():
                shutil.rmtree(folder)
            began = time.perf_counter()
            index = fp_search.FastPlaid(index=str(folder), device="cpu")
            index.create(documents_embeddings=documents, nbits=nbits, seed=args.seed)
            total_s = time.perf_counter() - began
            first = "first" not in cached
            cached.setdefault("first", nbits)
            compress_s = total_s - (cached["seconds"] if cached["first"] == nbits else 0.0)
            info = {"input": str(Path(args.input).resolve()), "build_s": cached["seconds"] + compress_s,
                    "kmeans_s": cached["seconds"], "compress_s": compress_s,
                    "num_centroids": int(cached["centroids"].shape[0]), "kmeans_run_here": first}
            built.write_text(json.dumps(info, indent=2) + "\n")
        build_s = info["build_s"]
        # Touch the index once (it loads lazily on the first search) before sizing and timing.
        index.search(queries_embeddings=[queries[0]], top_k=K, show_progress=False, n_processes=1)
        sizes = folder_bytes(folder)
        total_bytes = sum(sizes.values())
        print(f"nbits={nbits}: build {build_s:.1f} s (k-means {info['kmeans_s']:.1f} s, "
              f"compression {info['compress_s']:.1f} s), {info['num_centroids']} centroids, "
              f"{total_bytes / num_docs:,.0f} bytes/doc", flush=True)
        indexes[nbits] = {"folder": str(folder), **info, "bytes": total_bytes, "files": sizes}
        for probe, full in args.settings:
            # "all": every IVF cell probed / every retrieved document decompressed (fast-plaid
            # decompresses the best n_full_scores / 4 of the approximate scores), so that setting
            # shows what the residual compression alone costs.
            probe = info["num_centroids"] if probe == "all" else int(probe)
            full = 4 * num_docs if full == "all" else int(full)
            def one(query, probe=probe, full=full, index=index):
                hits = index.search(queries_embeddings=[query], top_k=K, n_ivf_probe=probe,
                                    n_full_scores=full, show_progress=False, n_processes=1)[0]
                return [doc for doc, _ in hits]

            found, ms, p90, cpu_ratio = timed_queries(one, queries)
            rows.append(row("fast-plaid", f"nbits={nbits}", f"n_ivf_probe={probe}, n_full_scores={full}",
                            recall(exact, found), ms, p90, cpu_ratio, total_bytes / num_docs, build_s,
                            set=args.set_name))
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
        if args.ceiling:
            # Every document decompressed from the index and scored exactly: what the residual
            # compression alone costs, whatever the search settings (no latency: not a search).
            began = time.perf_counter()
            decoded = index.get_embeddings(subset=list(range(num_docs)))
            padded = torch.zeros(num_docs, width, dim)
            for i, vectors in enumerate(decoded):
                padded[i, :len(vectors)] = vectors.to(torch.float32)
            found = exact_top_k(padded, cand_len, qry, qry_len)
            del padded, decoded
            rows.append(row("fast-plaid", f"nbits={nbits}", "decompressed, exhaustive exact MaxSim (ceiling)",
                            recall(exact, found), None, None, None, total_bytes / num_docs, build_s,
                            set=args.set_name, seconds=time.perf_counter() - began))
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
        index.close()
    fp_module.compute_kmeans = original_kmeans

    import fast_plaid
    from importlib.metadata import version

    return {
        "input": str(args.input), "input_meta": meta, "set": args.set_name,
        "documents": num_docs, "max_vectors_per_doc": width, "dim": dim,
        "vectors_total": int(cand_len.sum()), "queries": len(queries),
        "query_vectors_mean": float(qry_len.double().mean()),
        "threads": args.threads, "exact_s": exact_s, "exact_top10": exact,
        "versions": {"fast-plaid": version("fast-plaid"), "torch": torch.__version__,
                     "fastkmeans": version("fastkmeans"), "python": platform.python_version()},
        "fast_plaid_file": fast_plaid.__file__, "indexes": indexes, "results": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", nargs="?", type=Path, help="embeddings from scripts/plaid_export.py")
    parser.add_argument("--work", type=Path, default=Path("/tmp/plaid-work"), help="index folders go here")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--set-name", default="", help="label of the embedding set in the table")
    parser.add_argument("--nbits", default="2,4")
    parser.add_argument("--settings", default=DEFAULT_SETTINGS,
                        help="comma-separated n_ivf_probe x n_full_scores; 'all' for every cell / document")
    parser.add_argument("--queries", type=int, default=None, help="use the first N queries of the file")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42, help="fast-plaid's k-means seed")
    parser.add_argument("--no-ceiling", dest="ceiling", action="store_false",
                        help="skip scoring every decompressed document exactly (the compression's own recall)")
    parser.add_argument("--reuse", action="store_true",
                        help="search the indexes already in --work (built from the same input) instead of rebuilding")
    parser.add_argument("--tables", type=Path, nargs="+", default=None,
                        help="print the rows of these result files as one markdown table, and nothing else")
    args = parser.parse_args(argv)
    if args.tables:
        rows = []
        for path in args.tables:
            report = json.loads(path.read_text())
            rows.extend({"set": report.get("set", ""), **r} for r in report["results"])
        print(markdown(rows))
        return 0
    if args.input is None:
        parser.error("an input file is needed (or --tables)")
    args.nbits = [int(n) for n in args.nbits.split(",")]
    args.settings = [tuple(s.split("x")) for s in args.settings.split(",")]
    # Before torch or fast-plaid start their thread pools.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    report = run_plaid(args)
    print(markdown(report["results"]))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
