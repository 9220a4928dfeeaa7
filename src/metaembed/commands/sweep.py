"""`metaembed sweep`: the DVC `sweep` stage (params.yaml `sweep:`): quality and cost at every budget."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the parser is built without importing what the commands run
    from metaembed.stage_outputs import SweepBudgets


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml",
                        help="params file (sections sweep, evaluate, train, tracking, prepare)")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log onto the training's MLflow run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from metaembed.config import load_root
    from metaembed.evaluation.sweep import run_sweep

    params = load_root(args.params)
    result = run_sweep(params, progress=not args.no_progress, log_to_mlflow=False if args.no_mlflow else None)
    _print(result)
    run = f"; logged to MLflow run {result.mlflow_run_id}" if result.mlflow_run_id else ""
    print(f"wrote {params.budgets_path}, metrics.json, latency.json and plots{run}")
    return 0


def _print(result: SweepBudgets) -> None:
    from rich.console import Console
    from rich.table import Table

    sizes = list(result.budgets[0].latency_ms_per_query)  # a sweep has at least one budget
    table = Table(title=f"budgets (Pareto on {result.quality_metric})")
    for column in ["budget", "MMEB P@1", "ViDoRe nDCG@5", "bytes/cand bf16", "FLOPs/pair",
                   *[f"ms/query N={int(n):,}" for n in sizes], "queries/s", "candidates/s", "Pareto"]:
        table.add_column(column, justify="right")
    for row in result.budgets:
        table.add_row(
            row.name, *(_pct(row.quality[m]) for m in ("mmeb_p_at_1", "vidore_ndcg_at_5")),
            f"{row.index_bytes_per_candidate['bfloat16']:,}", f"{row.flops_per_pair:,}",
            *(f"{row.latency_ms_per_query[n]:.2f}" for n in sizes),
            f"{row.encode_per_second['query']:.0f}", f"{row.encode_per_second['candidate']:.0f}",
            "*" if row.pareto else "")
    # Logs and DVC output are not terminals: rich would squeeze the table into 80 columns.
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
