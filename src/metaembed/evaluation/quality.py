"""Quality at every budget: plan the suite, encode once at full size, score each budget by slicing.

`evaluate_model` is the Python entry point (the `evaluate` stage and tuning trials call it);
`score_stores` re-scores saved embeddings (the sweep) without touching the model.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from metaembed.evaluation import mmeb, vidore
from metaembed.evaluation.encode import EmbeddingStore, Requests, encode_requests
from metaembed.evaluation.params import Budget, budget_name
from metaembed.evaluation.suite import Suite, distinct_vidore

TOKENS = "tokens"


class BudgetError(ValueError):
    """A budget the model cannot serve (more vectors than it has meta tokens)."""


@dataclass
class Plan:
    suite: Suite
    requests: Requests
    mmeb: list[mmeb.SubsetPlan]
    vidore: list[vidore.SetPlan]


@dataclass
class QualityReport:
    budgets: dict[str, dict]  # name -> r_q, r_c and the vectors per side it scores
    summary: dict[str, dict[str, float]]  # budget -> metric -> value
    chance: dict[str, float]
    mmeb: dict[str, dict[str, dict]] = field(default_factory=dict)  # budget -> subset -> metrics
    vidore: dict[str, dict[str, dict]] = field(default_factory=dict)  # budget -> set -> metrics
    sets: dict[str, dict] = field(default_factory=dict)
    model: dict = field(default_factory=dict)  # pooling, dim
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def plan_suite(suite: Suite) -> Plan:
    requests = Requests()
    return Plan(suite, requests, [mmeb.plan_subset(s, requests) for s in suite.mmeb],
                [vidore.plan_set(v, requests) for v in suite.vidore])


def scoring_budgets(pooling: str, budgets: list[Budget], num_query: int | None, num_candidate: int | None,
                    key: str = "evaluate.budgets") -> dict[str, Budget | None]:
    """name -> budget for maxsim. Budgets slice meta tokens only: `last` has one vector per side
    ("1x1") and `tokens` a different number per item (scored in full, "tokens")."""
    if pooling == "last":
        return {"1x1": None}
    if pooling == TOKENS:
        return {TOKENS: None}
    out = {}
    for r_q, r_c in budgets:
        if r_q > num_query or r_c > num_candidate:
            raise BudgetError(f"{key}: budget [{r_q}, {r_c}] exceeds the model's {num_query} query and "
                              f"{num_candidate} candidate meta tokens; remove it or use a larger model")
        out[budget_name((r_q, r_c))] = (r_q, r_c)
    return out


def budget_vectors(budgets: dict[str, Budget | None], stores: dict[str, EmbeddingStore]) -> dict[str, dict]:
    """r_q, r_c and the mean vectors per side each budget reads (token-level: the mean length)."""
    out = {}
    for name, budget in budgets.items():
        if budget is None:
            query, candidate = stores["query"].mean_length(), stores["candidate"].mean_length()
        else:
            query, candidate = budget
        out[name] = {"r_q": max(1, round(query)), "r_c": max(1, round(candidate)),
                     "vectors": {"query": float(query), "candidate": float(candidate)}}
    return out


def score_stores(plan: Plan, stores: dict[str, EmbeddingStore], budgets: dict[str, Budget | None],
                 recall_at: list[int], progress: bool = True) -> QualityReport:
    """Score every set of the plan at every budget from the saved full-size embeddings."""
    from tqdm import tqdm

    started = time.perf_counter()
    queries, candidates = stores["query"], stores["candidate"]
    report = QualityReport(budget_vectors(budgets, stores), {name: {} for name in budgets}, {},
                           {name: {} for name in budgets}, {name: {} for name in budgets})
    work = len(plan.mmeb) + len(plan.vidore)
    with tqdm(total=work, desc=f"score {len(budgets)} budget(s)", unit="set", disable=not progress) as bar:
        for subset_plan in plan.mmeb:
            scores = mmeb.score_subset(subset_plan, queries, candidates, budgets)
            for name in budgets:
                scale = report.budgets[name]["vectors"]["query"]
                report.mmeb[name][subset_plan.subset.name] = mmeb.subset_metrics(subset_plan, scores[name], scale)
            bar.update(1)
        for set_plan in plan.vidore:
            scores = vidore.score_set(set_plan, queries, candidates, budgets)
            for name in budgets:
                report.vidore[name][set_plan.vidore.name] = vidore.set_metrics(set_plan, scores[name], recall_at)
            bar.update(1)
    _summarise(report, plan)
    report.seconds["score"] = round(time.perf_counter() - started, 2)
    return report


def evaluate_model(model, suite: Suite, budgets: list[Budget], recall_at: list[int] = (1, 5, 10),
                   batch_size: int = 64, progress: bool = True,
                   cache: dict[str, EmbeddingStore] | None = None) -> tuple[QualityReport, dict[str, EmbeddingStore]]:
    """Encode the suite once with `model` and score it at every budget; returns the stores too."""
    scored = scoring_budgets(model.params.pooling, budgets, model.num_vectors("query"), model.num_vectors("candidate"))
    plan = plan_suite(suite)
    started = time.perf_counter()
    stores = encode_requests(model, plan.requests, batch_size, progress, cache)
    encode_seconds = time.perf_counter() - started
    report = score_stores(plan, stores, scored, list(recall_at), progress)
    report.model = {"pooling": model.params.pooling, "dim": model.dim}
    report.seconds["encode"] = round(encode_seconds, 2)
    return report, stores


def _summarise(report: QualityReport, plan: Plan) -> None:
    subsets = {p.subset.name: p.subset for p in plan.mmeb}
    counted, duplicates = distinct_vidore([p.vidore for p in plan.vidore])
    for name in report.summary:
        if report.mmeb[name]:
            report.summary[name] |= mmeb.summarise(report.mmeb[name], subsets)
        if report.vidore[name]:
            report.summary[name] |= vidore.summarise(report.vidore[name], [s.name for s in counted])
    if plan.mmeb:
        report.chance |= mmeb.chance_summary([p.subset for p in plan.mmeb])
    if counted:
        report.chance["vidore_ndcg_at_5"] = sum(s.chance_ndcg_at_5 for s in counted) / len(counted)
    report.sets = {
        "source": plan.suite.source,
        "mmeb": {s.name: {"meta_task": s.meta_task, "split": s.split, "queries": len(s.queries)}
                 for s in plan.suite.mmeb},
        "vidore": {s.name: {"layout": s.layout, "queries": len(s.data.queries), "pages": len(s.data.corpus),
                            "counted_as": duplicates.get(s.name, s.name)} for s in plan.suite.vidore},
        "encoded": {side: plan.requests.count(side) for side in ("query", "candidate")},
    }
