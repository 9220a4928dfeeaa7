"""`metaembed promote`: run the promotion gate on the challenger (or --version) and show why."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (sections promotion, registry, tracking)")
    parser.add_argument("--version", help="model version to judge (default: the one aliased challenger)")
    parser.add_argument("--dry-run", action="store_true", help="print the decision table; change nothing")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console

    from metaembed.config import load_root
    from metaembed.registry.gate import promote
    from metaembed.registry.store import RegistryError, registry_client

    params = load_root(args.params)
    promotion, name = params.promotion, params.registry.model_name
    console = Console()
    try:
        client = registry_client(params.tracking, Path.cwd())
        decision = promote(client, name, promotion, version=args.version, dry_run=args.dry_run)
    except RegistryError as error:
        console.print(f"error: {error}", markup=False, highlight=False)
        return 1
    console.print(decision_table(decision))
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

    table = Table(title=f"promotion gate: {decision.model_name} v{decision.candidate} at budget "
                        f"{decision.budget} ({decision.metric})")
    for column in ("check", "candidate", "limit", "champion", "result"):
        table.add_column(column, justify="left" if column == "check" else "right")
    for check in decision.checks:
        table.add_row(check.name, check.value, check.limit, check.champion,
                      "[green]pass[/green]" if check.passed else "[red]FAIL[/red]")
    return table
