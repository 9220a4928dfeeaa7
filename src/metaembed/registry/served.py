"""Which budget a version is served at: each budget's quality and cost, and the gate's rule.

A version's costs per budget come from its tags: the index stage's measured search time and the
index bytes of its dtype (`metaembed.index_latency`), or, when the index stage did not run, the
sweep's synthetic latency at `promotion.latency_corpus_size` and its bytes at `index.dtype`
(`metaembed.budgets`). The rule, with `promotion.served_budget: null`:

    eligible = budgets whose quality >= best quality - max_quality_drop,
               whose index bytes <= max_index_bytes_per_candidate (when set)
               and whose latency <= max_latency_ms (when set)
    served   = the eligible budget with the fewest index bytes per candidate, then the lowest
               latency, then the highest quality, then the first in the sweep's order

`promotion.served_budget: [r_q, r_c]` pins the budget instead; the bounds are then checked by the
gate at that budget. Pure functions: the gate reads the tags and writes the decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from metaembed.registry.params import PromotionParams
from metaembed.stage_outputs import IndexLatency, SweepBudgets

# A quality exactly `max_quality_drop` below the best counts as within it despite binary rounding.
_EPS = 1e-12


@dataclass(frozen=True)
class BudgetCost:
    name: str
    quality: float | None  # of promotion.quality_metric
    index_bytes: int | None  # per candidate, at the budget's r_c, in the table's dtype
    latency_ms: float | None  # per query
    recall: float | None = None  # two-stage recall@k against exhaustive (index stage only)
    search: str = ""  # which search latency_ms times: "two-stage" or "exhaustive" (index stage only)


@dataclass(frozen=True)
class CostTable:
    """One version's budgets with the costs the gate compares."""

    rows: tuple[BudgetCost, ...]
    dtype: str
    measured: bool  # latency from the index stage (True) or the sweep's synthetic fallback
    candidates: int  # the index size the latency was measured at
    latency_source: str  # in words, for the decision

    def row(self, name: str) -> BudgetCost | None:
        return next((row for row in self.rows if row.name == name), None)

    def comparable(self, other: CostTable) -> bool:
        """Whether the two latencies can be compared: the same kind of measurement, the same index size."""
        return (self.measured, self.candidates) == (other.measured, other.candidates)


@dataclass(frozen=True)
class Option:
    cost: BudgetCost
    excluded: str  # why the rule passed it over ("" when eligible)
    served: bool


@dataclass(frozen=True)
class Choice:
    options: tuple[Option, ...]
    served: BudgetCost | None
    rule: str  # how the budget was chosen, in words
    failure: str = ""  # why no budget was chosen

    @property
    def name(self) -> str:
        return self.served.name if self.served else "none"


def _search(timed, min_recall: float) -> str:
    """The search a budget is served with: two-stage when the index has one and it keeps min_recall."""
    two_stage = timed.two_stage_ms is not None and timed.recall_at_k is not None and timed.recall_at_k >= min_recall
    return "two-stage" if two_stage else "exhaustive"


def cost_table(sweep: SweepBudgets, index: IndexLatency | None, params: PromotionParams, dtype: str) -> CostTable:
    """The version's costs: measured by the index stage when it ran, else the sweep's fallback."""
    metric = params.quality_metric
    if index is not None:
        rows = []
        for row in sweep.budgets:
            timed = index.row(row.name)
            search = _search(timed, params.min_recall) if timed else ""
            latency = None if timed is None else timed.two_stage_ms if search == "two-stage" else timed.exhaustive_ms
            rows.append(BudgetCost(row.name, row.quality.get(metric),
                                   timed.index_bytes_per_candidate if timed else None,
                                   latency, timed.recall_at_k if timed else None, search))
        source = (f"measured by the index stage: {index.search} of {index.index.candidates:,} evaluation "
                  f"candidates ({index.index.dtype})")
        return CostTable(tuple(rows), index.index.dtype, True, index.index.candidates, source)
    size = str(params.latency_corpus_size)
    rows = [BudgetCost(row.name, row.quality.get(metric), row.index_bytes_per_candidate.get(dtype),
                       row.latency_ms_per_query.get(size)) for row in sweep.budgets]
    source = (f"the sweep's synthetic index of {params.latency_corpus_size:,} candidates (exhaustive scoring): "
              "the index stage did not run for this version")
    return CostTable(tuple(rows), dtype, False, params.latency_corpus_size, source)


def choose(table: CostTable, params: PromotionParams) -> Choice:
    """The served budget: pinned by promotion.served_budget, or the cheapest eligible one."""
    if params.served_budget is not None:
        return _pinned(table, params)
    metric = params.quality_metric
    measured = [row for row in table.rows if row.quality is not None]
    if not measured:
        return Choice(tuple(Option(row, f"{metric} not measured", False) for row in table.rows), None,
                      _rule(params, None), f"no budget has {metric} measured")
    best = max(measured, key=lambda row: row.quality)
    reasons = {row.name: _exclusions(row, best, table, params) for row in table.rows}
    eligible = [row for row in table.rows if not reasons[row.name]]
    served = min(eligible, key=_cheapness(table), default=None)
    options = tuple(Option(row, "; ".join(reasons[row.name]), row is served) for row in table.rows)
    failure = "" if served else "no budget is within every bound: " + "; ".join(
        f"{row.name}: {', '.join(reasons[row.name])}" for row in table.rows)
    return Choice(options, served, _rule(params, best), failure)


def cheaper_or_equal(mine: BudgetCost, theirs: BudgetCost, comparable: bool, tolerance: float) -> tuple[bool, str]:
    """Whether `mine` costs no more than `theirs`: bytes <= theirs, and latency <= theirs x (1 +
    tolerance) when the two latencies are comparable; why not, in words."""
    if mine.index_bytes is None or theirs.index_bytes is None:
        return False, "index bytes unknown"
    if mine.index_bytes > theirs.index_bytes:
        return False, f"index {mine.index_bytes:,} B/candidate > the champion's {theirs.index_bytes:,}"
    if not comparable or mine.latency_ms is None or theirs.latency_ms is None:
        return True, ""
    if mine.latency_ms > theirs.latency_ms * (1 + tolerance):
        return False, (f"latency {mine.latency_ms:.3g} ms/query > the champion's {theirs.latency_ms:.3g} "
                       f"(+{tolerance:.0%} allowed)")
    return True, ""


def _pinned(table: CostTable, params: PromotionParams) -> Choice:
    name = params.served_budget_name
    served = table.row(name)
    options = tuple(Option(row, "" if row is served else "not the pinned budget", row is served) for row in table.rows)
    failure = "" if served else f"budget {name} was not evaluated (have: {', '.join(r.name for r in table.rows)})"
    return Choice(options, served, f"pinned by promotion.served_budget ({name})", failure)


def _exclusions(row: BudgetCost, best: BudgetCost, table: CostTable, params: PromotionParams) -> list[str]:
    metric, found = params.quality_metric, []
    if row.quality is None:
        found.append(f"{metric} not measured")
    elif row.quality < best.quality - params.max_quality_drop - _EPS:
        found.append(f"{metric} {row.quality:.4f} is more than {params.max_quality_drop:.4f} below the best "
                     f"{best.quality:.4f} ({best.name})")
    bound = params.max_index_bytes_per_candidate
    if bound is not None and row.index_bytes is None:
        found.append(f"no index size for {table.dtype}")
    elif bound is not None and row.index_bytes > bound:
        found.append(f"index {row.index_bytes:,} B/candidate > maximum {bound:,}")
    limit = params.max_latency_ms
    if limit is not None and row.latency_ms is None:
        found.append(f"no latency measured at {table.candidates:,} candidates")
    elif limit is not None and row.latency_ms > limit:
        found.append(f"latency {row.latency_ms:.3g} ms/query > maximum {limit:g}")
    return found


def _cheapness(table: CostTable):
    order = {row.name: position for position, row in enumerate(table.rows)}

    def key(row: BudgetCost) -> tuple:
        return (_or_inf(row.index_bytes), _or_inf(row.latency_ms), -(row.quality or 0.0), order[row.name])

    return key


def _or_inf(value: float | None) -> float:
    return math.inf if value is None else value


def _rule(params: PromotionParams, best: BudgetCost | None) -> str:
    bounds = [f"index <= {params.max_index_bytes_per_candidate:,} B/candidate"] \
        if params.max_index_bytes_per_candidate is not None else []
    bounds += [f"latency <= {params.max_latency_ms:g} ms/query"] if params.max_latency_ms is not None else []
    where = f" ({best.name}: {best.quality:.4f})" if best else ""
    return (f"the cheapest budget (fewest index bytes per candidate, then lowest latency) with "
            f"{params.quality_metric} within {params.max_quality_drop:.4f} of the best{where}"
            + (f" and {' and '.join(bounds)}" if bounds else ""))
