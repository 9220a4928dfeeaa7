"""`metaembed data ensure`: make data/raw exactly what data.dvc pins (cache, remote, or regenerate)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (section `data:`, to regenerate)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from metaembed.config import load_section
    from metaembed.data.dvc_sync import DataSyncError, ensure, pinned_path
    from metaembed.synth.generate import generate
    from metaembed.synth.params import DataParams

    repo = Path.cwd()
    params = load_section("data", DataParams, args.params)
    try:
        if Path(params.out_dir).as_posix() != pinned_path(repo):
            raise DataSyncError(f"data.out_dir ({params.out_dir}) is not the folder data.dvc pins "
                                f"({pinned_path(repo)}); make them agree")
        how = ensure(repo, lambda: generate(params))
    except DataSyncError as error:
        print(f"error: {error}")
        return 1
    print(f"data ready ({how})")
    return 0
