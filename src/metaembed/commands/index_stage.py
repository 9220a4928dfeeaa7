"""`metaembed index stage`: the DVC `index` stage (params.yaml `index:`): the served index of the
evaluation corpus, built from the cached embeddings, and its search time at every budget."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the parser is built without importing what the commands run
    from metaembed.stage_outputs import IndexLatency


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml",
                        help="params file (sections index, sweep, evaluate, train, prepare)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from metaembed.config import load_root
    from metaembed.serving.stage import run_index_stage

    params = load_root(args.params)
    result = run_index_stage(params, progress=not args.no_progress)
    _print(result)
    print(f"saved the index to {params.index_dir}; wrote {params.index_latency_path}, metrics.json and plots")
    return 0


def _print(result: IndexLatency) -> None:
    from rich.console import Console
    from rich.table import Table

    built = result.index
    # A line of its own: a rich title wraps to the table's width.
    print(f"index of {built.candidates:,} evaluation candidates ({built.dtype}), built in {built.build_s:.1f} s; "
          f"ms per query, median of {result.queries} queries x {result.repeats}, {result.search}")
    table = Table()
    for column in ["budget", "bytes/cand", "exhaustive ms", "two-stage ms", f"recall@{result.k}"]:
        table.add_column(column, justify="right")
    for row in result.budgets:
        table.add_row(row.name, f"{row.index_bytes_per_candidate:,}", f"{row.exhaustive_ms:.2f}",
                      "-" if row.two_stage_ms is None else f"{row.two_stage_ms:.2f}",
                      "-" if row.recall_at_k is None else f"{row.recall_at_k:.3f}")
    # Logs and DVC output are not terminals: rich would squeeze the table into 80 columns.
    Console(width=None if sys.stdout.isatty() else 160).print(table)
