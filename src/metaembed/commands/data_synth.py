"""`metaembed data synth`: write the synthetic MMEB/ViDoRe-format benchmark from params.yaml `data:`."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (section `data:`)")
    parser.add_argument("--out", default=None, help="output folder (default: data.out_dir)")
    parser.add_argument("--pin", action="store_true", help="then record the result in data.dvc (dvc add/commit)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from metaembed.config import load_section
    from metaembed.synth.generate import generate
    from metaembed.synth.params import DataParams

    params = load_section("data", DataParams, args.params)
    out = Path(args.out or params.out_dir)
    start = time.perf_counter()
    summary = generate(params, out, progress=not args.no_progress)
    files = [path for path in out.rglob("*") if path.is_file()]
    size = sum(path.stat().st_size for path in files)
    print(f"wrote {out}: {len(files)} files, {size / 2**20:.1f} MiB in {time.perf_counter() - start:.1f} s "
          f"({len(summary['mmeb_train'])} training subsets, {len(summary['mmeb_eval'])} MMEB eval subsets, "
          f"{len(summary['vidore'])} ViDoRe sets); card: {out / 'README.md'}")
    if args.pin:
        from metaembed.data.dvc_sync import DVC_FILE, pin

        pin(Path.cwd(), out.as_posix())
        print(f"pinned {out} in {DVC_FILE}; commit {DVC_FILE} (and `dvc push` if you use a remote)")
    return 0
