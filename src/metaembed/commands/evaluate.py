"""`metaembed evaluate`: the DVC `evaluate` stage (params.yaml `evaluate:`), or real-format folders."""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml",
                        help="params file (sections evaluate, train, tracking, prepare)")
    parser.add_argument("--mmeb", action="append", default=[], metavar="DIR",
                        help="an MMEB-eval folder (<DIR>/<Subset>/test-*.parquet) instead of the prepared data; "
                             "repeatable")
    parser.add_argument("--image-root", help="image root of the --mmeb folders (default: each folder)")
    parser.add_argument("--vidore", action="append", default=[], metavar="DIR",
                        help="a ViDoRe set (v1 QA or BEIR layout) instead of the prepared data; repeatable")
    parser.add_argument("--out-dir", help="output folder (default: evaluate.out_dir; with --mmeb/--vidore "
                                          "evaluate.out_dir + '-external')")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log onto the training's MLflow run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from metaembed.config import load_root
    from metaembed.evaluation.stage import run_evaluate
    from metaembed.evaluation.suite import load_folders

    params = load_root(args.params)
    external = bool(args.mmeb or args.vidore)
    suite = load_folders(args.mmeb, args.vidore, args.image_root) if external else None
    out_dir = args.out_dir or (f"{params.evaluate.out_dir}-external" if external else None)
    metrics = run_evaluate(params, suite, out_dir, progress=not args.no_progress,
                           log_to_mlflow=False if args.no_mlflow else None,
                           metric_prefix="eval_external" if external else "eval")
    _print(metrics)
    where = out_dir or params.evaluate.out_dir
    run = f"; logged to MLflow run {metrics['mlflow_run_id']}" if metrics["mlflow_run_id"] else ""
    print(f"wrote {where}/metrics.json, report.json, quality_by_budget.png{run}")
    return 0


def _print(metrics: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    labels = {"mmeb_p_at_1": "MMEB P@1", "mmeb_twin_accuracy": "twin acc.", "mmeb_p_at_1_in_distribution": "IND",
              "mmeb_p_at_1_out_of_distribution": "OOD", "vidore_ndcg_at_5": "ViDoRe nDCG@5",
              "vidore_mrr_at_10": "MRR@10"}
    columns = [k for k in labels if any(k in row for row in metrics["budgets"].values())]
    table = Table(title="quality per budget (chance in the last row)")
    table.add_column("budget")
    for column in columns:
        table.add_column(labels[column], justify="right")
    for budget, row in metrics["budgets"].items():
        table.add_row(budget, *(_pct(row.get(c)) for c in columns))
    table.add_row("chance", *(_pct(metrics["chance"].get(c)) for c in columns))
    # Logs and DVC output are not terminals: rich would squeeze the table into 80 columns.
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    seconds = metrics["seconds"]
    print(f"encode {seconds.get('encode', 0):.1f} s, score {seconds.get('score', 0):.1f} s, "
          f"total {seconds.get('total', 0):.1f} s")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
