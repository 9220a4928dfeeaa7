"""Write the embeddings that scripts/plaid_compare.py (fast-plaid) and scripts/plaid_ours.py
(MultiVectorIndex) compare on, as one safetensors file.

    PYTHONPATH=src .venv/bin/python scripts/plaid_export.py synthetic --candidates 4000 \
        --out /tmp/plaidrun/synthetic.safetensors
    PYTHONPATH=src .venv/bin/python scripts/plaid_export.py evaluate \
        --embeddings artifacts/evaluate/embeddings --out /tmp/plaidrun/evaluate.safetensors

Tensors: `candidates.vectors` float32 [N, R_c, D], `candidates.lengths` int64 [N],
`queries.vectors` float32 [B, R_q, D], `queries.lengths` int64 [B]; string metadata says where they
came from.

- `synthetic`: the clustered set of `metaembed.index.synthetic` (as the index benchmark draws it):
  each candidate R_c noisy copies of its topic, each query R_q noisy copies of a random
  candidate's topic.
- `evaluate`: the trained model's cached full-size vectors (`metaembed evaluate`'s
  `artifacts/evaluate/embeddings`): every cached candidate, and `--queries` cached queries drawn
  with `--seed`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file


def synthetic(args: argparse.Namespace) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from metaembed.index import synthetic as synth

    topics = synth.topics(args.candidates, args.dim, args.clusters, args.seed)
    candidates = synth.vectors_around(topics, args.vectors, args.seed + 3)
    targets = torch.randint(0, args.candidates, (args.queries,), generator=torch.Generator().manual_seed(args.seed + 1))
    queries = synth.vectors_around(topics[targets], args.query_vectors, args.seed + 2)
    tensors = {
        "candidates.vectors": candidates.contiguous(),
        "candidates.lengths": torch.full((args.candidates,), args.vectors, dtype=torch.int64),
        "queries.vectors": queries.contiguous(),
        "queries.lengths": torch.full((args.queries,), args.query_vectors, dtype=torch.int64),
    }
    meta = {"source": "metaembed.index.synthetic", "candidates": str(args.candidates),
            "vectors": str(args.vectors), "query_vectors": str(args.query_vectors), "dim": str(args.dim),
            "clusters": str(args.clusters), "seed": str(args.seed), "query_targets": json.dumps(targets.tolist())}
    return tensors, meta


def evaluate(args: argparse.Namespace) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from metaembed.evaluation.encode import load_stores

    stores, meta = load_stores(args.embeddings)
    cand, query = stores["candidate"], stores["query"]
    picked = torch.randperm(len(query.keys), generator=torch.Generator().manual_seed(args.seed))[:args.queries]
    tensors = {
        "candidates.vectors": cand.vectors.to(torch.float32).contiguous(),
        "candidates.lengths": cand.lengths.to(torch.int64).contiguous(),
        "queries.vectors": query.vectors[picked].to(torch.float32).contiguous(),
        "queries.lengths": query.lengths[picked].to(torch.int64).contiguous(),
    }
    info = {"source": str(Path(args.embeddings).resolve()), "candidates": str(len(cand.keys)),
            "queries_cached": str(len(query.keys)), "queries": str(len(picked)), "seed": str(args.seed),
            "query_keys": json.dumps([query.keys[i] for i in picked.tolist()]),
            "cache_meta": json.dumps(meta, default=str)[:20000]}
    return tensors, info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="source", required=True)
    syn = sub.add_parser("synthetic", help="clustered synthetic set (metaembed.index.synthetic)")
    syn.add_argument("--candidates", type=int, default=4000)
    syn.add_argument("--vectors", type=int, default=64, help="R_c")
    syn.add_argument("--query-vectors", type=int, default=16, help="R_q")
    syn.add_argument("--dim", type=int, default=128)
    syn.add_argument("--clusters", type=int, default=20, help="topic centres (the benchmark: 500 for 100k)")
    syn.add_argument("--queries", type=int, default=50)
    syn.add_argument("--seed", type=int, default=0)
    ev = sub.add_parser("evaluate", help="the evaluation's cached full-size vectors")
    ev.add_argument("--embeddings", type=Path, default=Path("artifacts/evaluate/embeddings"))
    ev.add_argument("--queries", type=int, default=50)
    ev.add_argument("--seed", type=int, default=0)
    for command in (syn, ev):
        command.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    tensors, meta = synthetic(args) if args.source == "synthetic" else evaluate(args)
    norms = tensors["candidates.vectors"].norm(dim=-1)
    real = torch.arange(norms.shape[1])[None] < tensors["candidates.lengths"][:, None]
    meta["candidate_norm_min_max"] = f"{float(norms[real].min()):.4f},{float(norms[real].max()):.4f}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out), metadata=meta)
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    print(f"wrote {args.out}: {shapes}; candidate vector norms {meta['candidate_norm_min_max']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
