"""The promotion gate's decision: its checks, the budgets it weighed, its tags and its markdown
(the version's description, `metaembed promote` and the pipeline's summary show it)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from metaembed.markdown_table import markdown_table
from metaembed.registry.names import (GATE_BUDGET_TAG, GATE_CHAMPION_BEFORE_TAG, GATE_CHECKS_TAG, GATE_DECISION_TAG,
                                      GATE_LATENCY_TAG, GATE_METRIC_TAG, GATE_REASON_TAG)
from metaembed.registry.served import Choice, CostTable

PROMOTE, REJECT, ALREADY = "promote", "reject", "already champion"


@dataclass(frozen=True)
class Check:
    name: str
    value: str
    limit: str
    champion: str
    passed: bool
    failure: str = ""  # why it failed, in words


@dataclass(frozen=True)
class Decision:
    model_name: str
    candidate: str
    champion: str | None
    budget: str  # the served budget, or "none"
    metric: str
    outcome: str
    reason: str
    checks: tuple[Check, ...]
    choice: Choice | None = None  # every budget and why it was or was not served (None: no table)
    table: CostTable | None = None
    champion_budget: str | None = None  # the champion's served budget the candidate was compared at
    budgets_markdown: str = ""  # the version's full quality/cost table, kept under the decision

    @property
    def promote(self) -> bool:
        return self.outcome == PROMOTE

    @property
    def latency_source(self) -> str:
        return self.table.latency_source if self.table else "none (no quality/cost table)"

    def tags(self) -> dict[str, str]:
        return {
            GATE_DECISION_TAG: "promoted" if self.promote else "rejected",
            GATE_REASON_TAG: self.reason,
            GATE_CHAMPION_BEFORE_TAG: self.champion or "none",
            GATE_BUDGET_TAG: self.budget,
            GATE_METRIC_TAG: self.metric,
            GATE_LATENCY_TAG: self.latency_source,
            GATE_CHECKS_TAG: json.dumps([asdict(check) for check in self.checks]),
        }


def decision_markdown(decision: Decision) -> str:
    """The decision, the served budget and why, every check, and every budget weighed."""
    champion = f"v{decision.champion}" if decision.champion else "none"
    at = f" at its served budget {decision.champion_budget}" if decision.champion_budget else ""
    parts = [f"**Promotion gate: {decision.outcome}** ({decision.model_name} v{decision.candidate}, served budget "
             f"**{decision.budget}**, metric `{decision.metric}`, champion {champion}{at}): {decision.reason}"]
    if decision.choice is not None:
        parts.append(f"Served budget: {decision.choice.rule}. Latency: {decision.latency_source}.")
    rows = [[check.name, check.value, check.limit, check.champion, "pass" if check.passed else "FAIL"]
            for check in decision.checks]
    parts.append(markdown_table(["check", "candidate", "limit", "champion", "result"], rows))
    if decision.choice is not None and decision.table is not None:
        parts.append(options_markdown(decision.choice, decision.table, decision.metric))
    return "\n\n".join(parts)


def options_markdown(choice: Choice, table: CostTable, metric: str) -> str:
    """Each budget's quality, bytes and latency, the served one marked, the others' exclusion."""
    recall = any(option.cost.recall is not None for option in choice.options)
    header = ["budget", metric, f"index B/cand ({table.dtype})",
              "ms/query (index stage)" if table.measured else f"ms/query (sweep, {table.candidates:,})"]
    header += ["two-stage recall@k", "search timed"] if recall else []
    rows = []
    for option in choice.options:
        cost = option.cost
        row = [cost.name, _fixed(cost.quality), _integer(cost.index_bytes), _float(cost.latency_ms)]
        row += [_fixed(cost.recall, 3), cost.search] if recall else []
        rows.append(row + ["**served**" if option.served else option.excluded or "eligible, not the cheapest"])
    return markdown_table(header + ["served?"], rows)


def _fixed(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _float(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def _integer(value: int | None) -> str:
    return "" if value is None else f"{value:,}"
