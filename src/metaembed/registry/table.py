"""A version's budget tables (`metaembed.stage_outputs.SweepBudgets`, and the index stage's
`IndexLatency` when it ran) as people read them: markdown.

Registration writes it as the model version's description (the gate puts its decision above it);
the pipeline's report repeats it.
"""

from __future__ import annotations

from metaembed.markdown_table import markdown_table
from metaembed.stage_outputs import IndexLatency, SweepBudgets


def budget_markdown(table: SweepBudgets, index: IndexLatency | None = None) -> str:
    metrics = sorted({key for row in table.budgets for key in row.quality})
    dtypes = sorted({key for row in table.budgets for key in row.index_bytes_per_candidate})
    corpora = sorted({key for row in table.budgets for key in row.latency_ms_per_query}, key=_as_number)
    header = (["budget (r_q x r_c)"] + metrics + [f"index B/cand ({d})" for d in dtypes]
              + ["FLOPs/pair"] + [f"ms/query @ {c} (synthetic)" for c in corpora])
    if index is not None:
        header += [f"ms/query exhaustive @ {index.index.candidates}", f"ms/query two-stage @ {index.index.candidates}",
                   f"recall@{index.k}"]
    rows = []
    for row in table.budgets:
        cells = ([row.name]
                 + [_fraction(row.quality.get(m)) for m in metrics]
                 + [_integer(row.index_bytes_per_candidate.get(d)) for d in dtypes]
                 + [_integer(row.flops_per_pair)]
                 + [_float(row.latency_ms_per_query.get(c)) for c in corpora])
        if index is not None:
            timed = index.row(row.name)
            cells += [_float(timed.exhaustive_ms), _float(timed.two_stage_ms), _fraction(timed.recall_at_k)] \
                if timed else ["", "", ""]
        rows.append(cells + ["yes" if row.pareto else ""])
    measured = "" if index is None else (f"; search time measured by the index stage on {index.index.candidates:,} "
                                         f"evaluation candidates ({index.index.dtype}, {index.threads} thread(s))")
    return (f"Quality and cost per retrieval budget (measured by the sweep on training run `{table.mlflow_run_id}`, "
            f"quality metric `{table.quality_metric}`{measured}):\n\n" + markdown_table(header + ["pareto"], rows))


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
