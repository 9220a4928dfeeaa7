"""`metaembed baselines`: MetaEmbed, no-MMR, single-vector and token-level side by side over seeds.

Each variant x seed trains with its params overrides into its own folder, is evaluated there,
and the mean and spread over seeds go to docs/results.md, artifacts/baselines and MLflow.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (section `baselines:` and the rest)")
    parser.add_argument("--variants", type=_names, help="comma-separated subset of baselines.variants")
    parser.add_argument("--seeds", type=_ints, help="comma-separated seeds (default: baselines.seeds)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a params value for every run (YAML value), e.g. --set train.max_steps=4; "
                             "repeatable; the results table names every override")
    parser.add_argument("--out-dir", help="run folders and aggregate (default: baselines.out_dir)")
    parser.add_argument("--results-doc", help="markdown file to write the table into (default: baselines.results_doc)")
    parser.add_argument("--no-doc", action="store_true", help="do not touch the results document")
    parser.add_argument("--no-mlflow", action="store_true", help="no MLflow logging (training still tracks its runs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--runs-only", action="store_true",
                        help="train and evaluate the selected runs, no aggregate (one job of a fan-out; "
                             "a later call without it aggregates every finished run)")


def run(args: argparse.Namespace) -> int:
    from metaembed.config import parse_override
    from metaembed.experiments.baselines import BaselinesOptions, run_baselines

    options = BaselinesOptions(
        params_path=args.params,
        variants=args.variants,
        seeds=args.seeds,
        overrides=dict(parse_override(text) for text in args.overrides),
        out_dir=args.out_dir,
        results_doc=None if args.no_doc else args.results_doc,
        write_doc=not args.no_doc,
        log_to_mlflow=not args.no_mlflow,
        progress=not args.no_progress,
        runs_only=args.runs_only,
    )
    summary = run_baselines(options)
    if args.runs_only:
        for done in summary["runs"]:
            print(f"{done['variant']} seed {done['seed']}: done in {done['run_dir']}")
        return 0
    print(summary["table_markdown"])
    print()
    for line in summary["directions_markdown"]:
        print(line)
    print(f"\nwrote {summary['out_dir']}/results.json, results.md, baselines.png"
          + (f" and {summary['results_doc']}" if summary["results_doc"] else "")
          + (f"; MLflow run {summary['mlflow_run_id']}" if summary["mlflow_run_id"] else ""))
    return 0


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one variant name")
    return names


def _ints(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None
