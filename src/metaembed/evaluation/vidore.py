"""ViDoRe-style scoring: every query ranks the whole corpus of its set; metrics by pytrec_eval.

nDCG@5 and recall@k are trec_eval's `ndcg_cut` and `recall` (linear gains, the ideal ranking
from all judged pages), as ViDoRe and MTEB compute them. trec_eval's `recip_rank` has no cut-off,
so MRR@10 is `recip_rank` over each query's top 10, ranked as trec_eval ranks (score descending,
ties by document id descending). Means are over the queries that have judgments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytrec_eval
import torch

from metaembed.data.records import Side
from metaembed.evaluation.encode import EmbeddingStore, Requests
from metaembed.evaluation.suite import VidoreSet
from metaembed.scoring import maxsim

MRR_CUTOFF = 10
NDCG_CUTOFF = 5


@dataclass
class SetPlan:
    vidore: VidoreSet
    query_ids: list[str]
    query_keys: list[str]
    corpus_ids: list[str]
    corpus_keys: list[str]


def plan_set(vidore: VidoreSet, requests: Requests) -> SetPlan:
    data = vidore.data
    query_ids, corpus_ids = list(data.queries), list(data.corpus)
    query_keys = [requests.add("query", Side(data.queries[q])) for q in query_ids]
    corpus_keys = [requests.add("candidate", Side("", data.corpus[c])) for c in corpus_ids]
    return SetPlan(vidore, query_ids, query_keys, corpus_ids, corpus_keys)


def score_set(plan: SetPlan, queries: EmbeddingStore, candidates: EmbeddingStore,
              budgets: dict[str, tuple[int, int] | None]) -> dict[str, torch.Tensor]:
    """Per budget, the `[queries, pages]` score matrix."""
    q, q_mask = queries.take(queries.rows(plan.query_keys))
    c, c_mask = candidates.take(candidates.rows(plan.corpus_keys))
    return {name: maxsim(q, c, budget=budget, q_mask=q_mask, c_mask=c_mask) for name, budget in budgets.items()}


def to_run(plan: SetPlan, scores: torch.Tensor) -> dict[str, dict[str, float]]:
    rows = scores.double().tolist()
    return {qid: dict(zip(plan.corpus_ids, row)) for qid, row in zip(plan.query_ids, rows)}


def integer_qrels(name: str, qrels: dict[str, dict[str, float]]) -> dict[str, dict[str, int]]:
    """trec_eval's grades are integers; ViDoRe stores them as int or float (1.0, 2.0)."""
    out = {}
    for qid, docs in qrels.items():
        out[qid] = {}
        for cid, score in docs.items():
            if not math.isfinite(score) or score != int(score):
                raise ValueError(f"ViDoRe set {name}: qrels grade {score!r} (query {qid}, page {cid}) is not a whole "
                                 "number; trec_eval's nDCG needs integer grades")
            out[qid][cid] = int(score)
    return out


def trec_metrics(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]],
                 recall_at: list[int]) -> dict[str, float]:
    """Mean nDCG@5, recall@k and MRR@10 over the judged queries, by pytrec_eval."""
    measures = {f"ndcg_cut.{NDCG_CUTOFF}", "recall." + ",".join(str(k) for k in recall_at)}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    top = {qid: dict(_trec_order(docs)[:MRR_CUTOFF]) for qid, docs in run.items()}
    reciprocal = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top)
    if not per_query:
        raise ValueError("no query has both judgments and a ranking: check the qrels' query ids")
    metrics = {f"ndcg_at_{NDCG_CUTOFF}": _mean(v[f"ndcg_cut_{NDCG_CUTOFF}"] for v in per_query.values())}
    for k in recall_at:
        metrics[f"recall_at_{k}"] = _mean(v[f"recall_{k}"] for v in per_query.values())
    metrics[f"mrr_at_{MRR_CUTOFF}"] = _mean(reciprocal.get(qid, {}).get("recip_rank", 0.0) for qid in per_query)
    metrics["queries"] = len(per_query)
    return metrics


def set_metrics(plan: SetPlan, scores: torch.Tensor, recall_at: list[int]) -> dict[str, float]:
    qrels = integer_qrels(plan.vidore.name, plan.vidore.data.qrels)
    metrics = trec_metrics(qrels, to_run(plan, scores), recall_at)
    metrics["unjudged_queries"] = len(set(plan.query_ids) - set(qrels))
    metrics["chance_ndcg_at_5"] = plan.vidore.chance_ndcg_at_5
    return metrics


def summarise(sets: dict[str, dict], counted: list[str]) -> dict[str, float]:
    """Means over the distinct sets (`counted`): a v1 set shipped twice counts once."""
    keys = [k for k in sets[counted[0]] if k.startswith(("ndcg_at", "recall_at", "mrr_at"))]
    return {f"vidore_{key}": _mean(sets[name][key] for name in counted) for key in keys}


def _trec_order(docs: dict[str, float]) -> list[tuple[str, float]]:
    # trec_eval sorts by score descending, then by document id descending.
    return sorted(docs.items(), key=lambda item: (item[1], item[0]), reverse=True)


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)
