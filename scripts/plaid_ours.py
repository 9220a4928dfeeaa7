"""MultiVectorIndex on the same embeddings file as scripts/plaid_compare.py (fast-plaid), measured
the same way: recall@10 against the exact MaxSim top-10, median single-query latency on one
thread, build seconds, bytes per document.

    flock /tmp/cpu.lock nice -n 5 env PYTHONPATH=src .venv/bin/python scripts/plaid_ours.py \
        /tmp/plaidrun/synthetic.safetensors --output artifacts/plaid/ours_synthetic.json

Per dtype (default bfloat16 and int8) it builds one index with the HNSW first stage (default
settings: M=32, efConstruction=80; `--first-stage flat` for the exact one), saves it (bytes per
document = the saved folder / N; the formula of `metaembed.index.sizes` is reported beside it), and
searches every query alone at the full budget (R_q, R_c) with each first_stage_k, and exhaustively
for the first dtype (the other dtypes get one untimed batched exhaustive search, their ceiling). The exact
reference and the timing loop are plaid_compare.py's own functions, imported from beside this file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from plaid_compare import K, exact_top_k, folder_bytes, load_sets, markdown, recall, row, timed_queries  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path)
    parser.add_argument("--work", type=Path, default=Path("/tmp/plaid-ours"), help="saved indexes go here")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--set-name", default="")
    parser.add_argument("--dtypes", default="bfloat16,int8")
    parser.add_argument("--first-stage-ks", default="64,256,512")
    parser.add_argument("--first-stage", default="hnsw", choices=("hnsw", "flat"),
                        help="flat (exact inner product on the first vector) separates the first vector's own "
                             "recall from HNSW's approximation")
    parser.add_argument("--first-stage-vectors", type=int, default=1,
                        help="each candidate's leading vectors in the first stage (metaembed.index.first_stage)")
    parser.add_argument("--first-stage-pool", default="first", choices=("first", "mean"),
                        help="mean: one mean vector per candidate in the first stage")
    parser.add_argument("--exhaustive", default="first", choices=("first", "all", "none"),
                        help="also time exhaustive search for the first dtype, every dtype, or none")
    parser.add_argument("--queries", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import faiss
    import torch

    import metaembed
    from metaembed.index import MultiVectorIndex, first_stage_bytes_per_candidate, index_bytes_per_candidate

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    cand, cand_len, qry, qry_len, meta = load_sets(args.input, args.queries)
    num_docs, width, dim = cand.shape
    mask = torch.arange(width)[None, :] < cand_len[:, None]
    query_mask = torch.arange(qry.shape[1])[None, :] < qry_len[:, None]
    budget = (qry.shape[1], width)
    ids = [str(i) for i in range(num_docs)]
    singles = [(qry[i:i + 1], query_mask[i:i + 1]) for i in range(len(qry))]

    began = time.perf_counter()
    exact = exact_top_k(cand, cand_len, qry, qry_len)
    exact_s = time.perf_counter() - began
    print(f"exact MaxSim top-{K} of {len(qry)} queries over {num_docs} documents: {exact_s:.1f} s", flush=True)

    rows, indexes = [], {}
    for position, dtype in enumerate(args.dtypes.split(",")):
        began = time.perf_counter()
        index = MultiVectorIndex.build(cand, mask, ids, dtype=dtype, first_stage=args.first_stage,
                                       first_stage_vectors=args.first_stage_vectors,
                                       first_stage_pool=args.first_stage_pool)
        build_s = time.perf_counter() - began
        stage = f"{args.first_stage}-{args.first_stage_pool}-{args.first_stage_vectors}"
        folder = args.work / f"{dtype}-{stage}"
        if folder.exists():
            shutil.rmtree(folder)
        began = time.perf_counter()
        index.save(folder)
        save_s = time.perf_counter() - began
        built_s = build_s + save_s  # the table's build seconds: fast-plaid's create() writes its folder too
        sizes = folder_bytes(folder)
        total = sum(sizes.values())
        formula = (index_bytes_per_candidate(dtype, width, dim)
                   + first_stage_bytes_per_candidate(args.first_stage, dim, vectors=args.first_stage_vectors))
        indexes[dtype] = {"build_s": build_s, "save_s": save_s, "bytes": total, "files": sizes,
                          "formula_bytes_per_candidate": formula, "first_stage": index.first_stage.to_json()}
        print(f"{dtype}: built in {build_s:.1f} s (+ {save_s:.1f} s to save), saved {total / num_docs:,.0f} bytes/doc "
              f"(formula {formula:,}, plus mask and ids)", flush=True)
        searches = [(int(fsk), f"{stage}, first_stage_k={fsk}") for fsk in args.first_stage_ks.split(",")]
        timed_exhaustive = args.exhaustive == "all" or (args.exhaustive == "first" and position == 0)
        if timed_exhaustive:
            searches.append((None, "exhaustive"))
        for first_stage_k, setting in searches:
            def one(single, fsk=first_stage_k, index=index):
                return [int(i) for i in index.search(single[0], single[1], budget=budget, k=K,
                                                      first_stage_k=fsk)[1][0]]

            found, ms, p90, cpu_ratio = timed_queries(one, singles)
            rows.append(row("MultiVectorIndex", dtype, f"{setting}, budget {budget[0]}x{budget[1]}",
                            recall(exact, found), ms, p90, cpu_ratio, total / num_docs, built_s,
                            set=args.set_name))
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
        if not timed_exhaustive:
            # The dtype's own ceiling without timing it: one batched exhaustive search.
            found = [[int(i) for i in hits] for hits in index.search(qry, query_mask, budget=budget, k=K)[1]]
            rows.append(row("MultiVectorIndex", dtype, f"exhaustive (batched, recall only), budget "
                            f"{budget[0]}x{budget[1]}", recall(exact, found), None, None, None, total / num_docs,
                            built_s, set=args.set_name))
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)

    from importlib.metadata import version

    report = {
        "input": str(args.input), "input_meta": meta, "set": args.set_name, "documents": num_docs,
        "max_vectors_per_doc": width, "dim": dim, "vectors_total": int(cand_len.sum()), "queries": len(qry),
        "threads": args.threads, "exact_s": exact_s, "exact_top10": exact,
        "versions": {"metaembed": getattr(metaembed, "__version__", "?"), "torch": torch.__version__,
                     "faiss": version("faiss-cpu")},
        "indexes": indexes, "results": rows,
    }
    print(markdown(rows))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
