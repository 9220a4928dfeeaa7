"""`metaembed promote`: run the promotion gate on the challenger (or --version) and show why."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml",
                        help="params file (sections promotion, registry, tracking, index)")
    parser.add_argument("--version", help="model version to judge (default: the one aliased challenger)")
    parser.add_argument("--dry-run", action="store_true", help="print the decision table; change nothing")


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from rich.console import Console

    from metaembed.config import load_root
    from metaembed.registry.gate import promote
    from metaembed.registry.store import RegistryError, registry_client

    params = load_root(args.params)
    promotion, name = params.promotion, params.registry.model_name
    # Logs and pipes are not terminals: rich would squeeze the budget table into 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        client = registry_client(params.tracking, Path.cwd())
        decision = promote(client, name, promotion, version=args.version, dry_run=args.dry_run,
                           index_dtype=params.index.dtype)
    except RegistryError as error:
        console.print(f"error: {error}", markup=False, highlight=False)
        return 1
    console.print(decision_table(decision))
    if decision.choice is not None:
        console.print(budget_table(decision))
    if decision.promote:
        verb = "would promote" if args.dry_run else "promoted"
        console.print(f"{verb} v{decision.candidate} to champion: {decision.reason}", markup=False)
    else:
        verb = "would keep" if args.dry_run else "kept"
        champion = f"v{decision.champion}" if decision.champion else "no champion"
        console.print(f"{verb} {champion} as champion: {decision.reason}", markup=False)
    return 0


def decision_table(decision):
    from rich.table import Table

    table = Table(title=f"promotion gate: {decision.model_name} v{decision.candidate} served at budget "
                        f"{decision.budget} ({decision.metric})")
    for column in ("check", "candidate", "limit", "champion", "result"):
        table.add_column(column, justify="left" if column == "check" else "right")
    for check in decision.checks:
        table.add_row(check.name, check.value, check.limit, check.champion,
                      "[green]pass[/green]" if check.passed else "[red]FAIL[/red]")
    return table


def budget_table(decision):
    """Each budget the gate weighed: quality, bytes, latency, and served or why not."""
    from rich.table import Table

    cost = decision.table
    table = Table(title=f"budgets: {decision.choice.rule}; latency {decision.latency_source}", title_justify="left")
    for column in ("budget", decision.metric, f"bytes/cand ({cost.dtype})", "ms/query", "search (recall@k)", "served?"):
        table.add_column(column, justify="left" if column == "served?" else "right")
    for option in decision.choice.options:
        row = option.cost
        search = row.search + ("" if row.recall is None else f" ({row.recall:.3f})")
        table.add_row(row.name, "-" if row.quality is None else f"{row.quality:.4f}",
                      "-" if row.index_bytes is None else f"{row.index_bytes:,}",
                      "-" if row.latency_ms is None else f"{row.latency_ms:.3g}", search or "-",
                      "[green]served[/green]" if option.served else option.excluded or "eligible, not the cheapest")
    return table
