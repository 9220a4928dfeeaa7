"""`metaembed data prepare`: the DVC `prepare` stage (check data/raw, write data/prepared)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml",
                        help="params file (section `prepare:`; the raw folder is `data.out_dir`)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from metaembed.config import load_root
    from metaembed.data.prepare import run_prepare
    from metaembed.data.problems import DataError

    params = load_root(args.params)
    try:
        report = run_prepare(params.raw_dir, params.prepare, progress=not args.no_progress)
    except (DataError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}")
        return 1
    for name, count in report.counts.items():
        extra = f", {count['quarantined_rows']} quarantined" if count["quarantined_rows"] else ""
        note = f" ({count['note']})" if count.get("note") else ""
        print(f"  {name}: {count['rows_read']} rows read, {count['kept']} kept{extra}{note}")
        for file, file_count in count["files"].items():
            if file_count.get("error"):
                print(f"    {file}: {file_count['error']}")
    for path in report.ignored:
        print(f"  ignored (no reader recognises it): {path}")
    if report.quarantined_rows:
        print(f"{report.quarantined_rows} bad row(s) quarantined in {params.prepared_dir}/quarantine/bad_rows.jsonl")
    print(f"wrote {params.prepared_dir}")
    return 0
