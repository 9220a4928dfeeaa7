"""MMEB-style scoring: each query ranks its own candidate list (positive at index 0).

Precision@1 uses `metaembed.metrics.precision_at_1`, which splits ties at the top evenly, so a
model that gives every candidate the same score gets 1/K, not the 100% an argmax would hand to
index 0. Twin accuracy asks the narrower question the generated data can ask: does the positive
beat the candidates that differ from it in one attribute only (`twin_indices`)? Chance is
1/(1 + twins) there, not 1/K.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metaembed.evaluation.encode import EmbeddingStore, Requests
from metaembed.evaluation.suite import MmebSubset
from metaembed.metrics import precision_at_1
from metaembed.scoring import maxsim

# Scores within this much (times r_q, the largest possible score) of the top count as tied:
# float32 sums of the same dot products can differ in the last bits when computed in different
# GEMM tiles, and such noise must not decide a tie either way.
TIE_TOLERANCE = 1e-6


@dataclass
class SubsetPlan:
    subset: MmebSubset
    query_keys: list[str]
    candidate_keys: list[list[str]]  # per query, positive first


def plan_subset(subset: MmebSubset, requests: Requests) -> SubsetPlan:
    query_keys = [requests.add("query", q.query) for q in subset.queries]
    candidate_keys = [[requests.add("candidate", c) for c in q.candidates] for q in subset.queries]
    return SubsetPlan(subset, query_keys, candidate_keys)


def snap_ties(scores: torch.Tensor, scale: float) -> torch.Tensor:
    """Set scores within `TIE_TOLERANCE * scale` of each row's top to exactly the top."""
    top = scores.max(dim=-1, keepdim=True).values
    return torch.where(scores >= top - TIE_TOLERANCE * scale, top, scores)


def score_subset(plan: SubsetPlan, queries: EmbeddingStore, candidates: EmbeddingStore,
                 budgets: dict[str, tuple[int, int] | None]) -> dict[str, list[torch.Tensor]]:
    """Per budget, each query's scores over its own candidates (`[K]`, positive first)."""
    q_rows = queries.rows(plan.query_keys)
    limit_q = _limit(budgets, 0)
    limit_c = _limit(budgets, 1)
    q_all, q_mask_all = queries.take(q_rows, limit_q)
    out: dict[str, list[torch.Tensor]] = {name: [] for name in budgets}
    for index, keys in enumerate(plan.candidate_keys):
        c, c_mask = candidates.take(candidates.rows(keys), limit_c)
        q, q_mask = _trim(q_all[index:index + 1], None if q_mask_all is None else q_mask_all[index:index + 1])
        for name, budget in budgets.items():
            scores = maxsim(q, c, budget=budget, q_mask=q_mask, c_mask=c_mask)
            out[name].append(scores[0])
    return out


def subset_metrics(plan: SubsetPlan, scores: list[torch.Tensor], scale: float) -> dict[str, float]:
    """Precision@1 and twin accuracy (mean over queries) with their chance levels."""
    p_at_1, twins = [], []
    for query, row in zip(plan.subset.queries, scores):
        row = snap_ties(row.double().unsqueeze(0), scale)
        p_at_1.append(float(precision_at_1(row, 0)))
        if query.twin_indices:
            columns = torch.tensor([0, *query.twin_indices])
            twins.append(float(precision_at_1(row[:, columns], 0)))
    metrics = {"p_at_1": sum(p_at_1) / len(p_at_1), "queries": len(p_at_1),
               "chance_p_at_1": plan.subset.chance_p_at_1}
    if twins:
        metrics |= {"twin_accuracy": sum(twins) / len(twins), "twin_queries": len(twins),
                    "chance_twin_accuracy": plan.subset.chance_twin_accuracy}
    return metrics


def summarise(subsets: dict[str, dict], info: dict[str, MmebSubset]) -> dict[str, float]:
    """MMEB's way: every mean is over subsets (not queries), overall and per split and meta-task."""
    summary = {"mmeb_p_at_1": _mean(m["p_at_1"] for m in subsets.values())}
    twins = [m["twin_accuracy"] for m in subsets.values() if "twin_accuracy" in m]
    if twins:
        summary["mmeb_twin_accuracy"] = _mean(twins)
    for attribute in ("split", "meta_task"):
        groups: dict[str, list[float]] = {}
        for name, metrics in subsets.items():
            groups.setdefault(getattr(info[name], attribute), []).append(metrics["p_at_1"])
        for group, values in sorted(groups.items()):
            summary[f"mmeb_p_at_1_{group}"] = _mean(values)
    return summary


def chance_summary(subsets: list[MmebSubset]) -> dict[str, float]:
    """The same means as `summarise`, of what a random ranking scores."""
    chance = {"mmeb_p_at_1": _mean(s.chance_p_at_1 for s in subsets)}
    twins = [s.chance_twin_accuracy for s in subsets if s.chance_twin_accuracy is not None]
    if twins:
        chance["mmeb_twin_accuracy"] = _mean(twins)
    for attribute in ("split", "meta_task"):
        groups: dict[str, list[float]] = {}
        for subset in subsets:
            groups.setdefault(getattr(subset, attribute), []).append(subset.chance_p_at_1)
        for group, values in sorted(groups.items()):
            chance[f"mmeb_p_at_1_{group}"] = _mean(values)
    return chance


def _limit(budgets: dict[str, tuple[int, int] | None], side: int) -> int | None:
    """The most vectors any budget reads on a side (None: all of them)."""
    if any(b is None for b in budgets.values()):
        return None
    return max(b[side] for b in budgets.values())


def _trim(vectors: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One query's vectors without the padding a longer query of its subset needed."""
    if mask is None:
        return vectors, None
    width = int(mask.sum(dim=1).max())
    return vectors[:, :width], mask[:, :width]


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)
