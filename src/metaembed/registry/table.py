"""The sweep's budget table (`metaembed.stage_outputs.SweepBudgets`) as people read it: markdown.

Registration writes it as the model version's description; the pipeline's report repeats it.
"""

from __future__ import annotations

from metaembed.markdown_table import markdown_table
from metaembed.stage_outputs import SweepBudgets


def budget_markdown(table: SweepBudgets) -> str:
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
    return (f"Quality and cost per retrieval budget (measured by the sweep on training run `{table.mlflow_run_id}`, "
            f"quality metric `{table.quality_metric}`):\n\n" + markdown_table(header, rows))


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
