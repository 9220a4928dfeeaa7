"""Markdown for people: the budget table (version description, flow artifact) and gate decisions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metaembed.registry.gate import Decision
    from metaembed.registry.register import Registration
    from metaembed.registry.table import BudgetTable


def budget_markdown(table: "BudgetTable") -> str:
    metrics = sorted({key for row in table.budgets for key in row.quality})
    dtypes = sorted({key for row in table.budgets for key in row.index_bytes_per_candidate})
    corpora = sorted({key for row in table.budgets for key in row.latency_ms_per_query}, key=_as_number)
    header = (["budget (r_q x r_c)"] + metrics + [f"index B/cand ({d})" for d in dtypes]
              + ["FLOPs/pair"] + [f"ms/query @ {c}" for c in corpora] + ["pareto"])
    rows = []
    for row in table.budgets:
        rows.append(
            [row.name]
            + [_fraction(row.quality.get(m)) for m in metrics]
            + [_integer(row.index_bytes_per_candidate.get(d)) for d in dtypes]
            + [_integer(row.flops_per_pair)]
            + [_float(row.latency_ms_per_query.get(c)) for c in corpora]
            + ["yes" if row.pareto else ""]
        )
    return (f"Quality and cost per retrieval budget (sweep run `{table.mlflow_run_id}`, "
            f"quality metric `{table.quality_metric}`):\n\n" + markdown_table(header, rows))


def decision_markdown(decision: "Decision") -> str:
    rows = [[check.name, check.value, check.limit, check.champion, "pass" if check.passed else "FAIL"]
            for check in decision.checks]
    return (f"**Promotion gate: {decision.outcome}** ({decision.model_name} v{decision.candidate}, "
            f"budget {decision.budget}, metric `{decision.metric}`, champion "
            f"{'v' + decision.champion if decision.champion else 'none'}): {decision.reason}\n\n"
            + markdown_table(["check", "candidate", "limit", "champion", "result"], rows))


def pipeline_markdown(stages: Mapping[str, str], registration: "Registration", decision: "Decision",
                      dry_run: bool = False) -> str:
    registered = "a new version" if registration.created else "already registered: nothing new"
    note = "\n\n_Dry run (`pipeline.promote: false`): no alias was moved._" if dry_run else ""
    return "\n\n".join([
        "# metaembed pipeline",
        markdown_table(["stage", "status"], [[name, status] for name, status in stages.items()]),
        f"**Model** `{registration.uri}` ({registered}), sha256 `{registration.model_sha256[:16]}`; "
        f"training MLflow run `{registration.train_run_id}` in `{registration.tracking_uri}`.",
        decision_markdown(decision) + note,
        budget_markdown(registration.table),
    ])


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _as_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("inf")


def _fraction(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _float(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def _integer(value: int | None) -> str:
    return "" if value is None else f"{value:,}"
