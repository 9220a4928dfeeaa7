"""Where MMEB P@1 is lost: against the one-attribute twins, or already against random candidates.

    python scripts/negatives_probe.py [--prepared data/prepared] [--embeddings artifacts/evaluate/embeddings]

Reads the evaluate stage's embedding cache (no encoding). Per MMEB subset: P@1 when the twins are
left out of each candidate list (positive against the random candidates only) at (1,1) and at the
full size, and how alike a list's candidates are (mean cosine between distinct candidates' (1,1)
vectors). A subset near chance here has not learnt its task; one that is high here but low in the
report loses to its twins (docs/learnability.md, session 13).
"""

from __future__ import annotations

import argparse

import torch

from metaembed.evaluation.encode import Requests, load_stores
from metaembed.evaluation.mmeb import plan_subset
from metaembed.evaluation.suite import load_prepared


def maxsim(query: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """query [R_q, D], candidates [K, R_c, D] -> [K] late-interaction scores."""
    return (query @ candidates.transpose(1, 2)).max(dim=-1).values.sum(dim=-1)


def probe_subset(subset, queries, candidates, rows: dict[str, dict[str, int]]) -> dict[str, float]:
    """`rows`: per side, each item key's row in its store."""
    plan = plan_subset(subset, Requests())
    hits_1x1 = hits_full = similarity = 0.0
    for query_key, keys, query in zip(plan.query_keys, plan.candidate_keys, subset.queries):
        twins = set(query.twin_indices or [])
        kept = torch.tensor([0] + [j for j in range(1, len(keys)) if j not in twins])
        vectors = candidates.vectors[torch.tensor([rows["candidate"][k] for k in keys])]
        q = queries.vectors[rows["query"][query_key]]
        first = vectors[:, 0]
        pairwise = first @ first.T
        similarity += float((pairwise.sum() - pairwise.diagonal().sum()) / (len(keys) * (len(keys) - 1)))
        for_1x1, for_full = (first @ q[0])[kept], maxsim(q, vectors)[kept]
        hits_1x1 += float(bool((for_1x1[1:] < for_1x1[0]).all()))
        hits_full += float(bool((for_full[1:] < for_full[0]).all()))
    n = len(subset.queries)
    return {"random_only_p_at_1_1x1": hits_1x1 / n, "random_only_p_at_1_full": hits_full / n,
            "candidate_cosine_1x1": similarity / n, "random_candidates": len(kept) - 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--embeddings", default="artifacts/evaluate/embeddings")
    args = parser.parse_args()
    suite = load_prepared(args.prepared)
    stores, _ = load_stores(args.embeddings)
    rows = {side: {key: i for i, key in enumerate(store.keys)} for side, store in stores.items()}
    print(f"{'subset':16s} {'P@1 vs random only (1,1)':>26s} {'(full)':>8s} {'candidate cos':>14s}")
    for subset in suite.mmeb:
        found = probe_subset(subset, stores["query"], stores["candidate"], rows)
        print(f"{subset.name:16s} {100 * found['random_only_p_at_1_1x1']:25.1f}% {100 * found['random_only_p_at_1_full']:7.1f}% "
              f"{found['candidate_cosine_1x1']:14.3f}   (1 positive, {found['random_candidates']} random)")


if __name__ == "__main__":
    main()
