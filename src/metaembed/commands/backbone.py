"""`metaembed backbone build-tiny`: build the offline tiny preset into the cache."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", default=".cache/backbones", help="where presets are cached")
    parser.add_argument("--force", action="store_true", help="rebuild even if the preset is cached")


def run(args: argparse.Namespace) -> int:
    from metaembed.backbones.tiny import TinySpec, build_tiny, ensure_tiny, tiny_dir

    spec = TinySpec()
    path = build_tiny(tiny_dir(args.cache_dir, spec), spec) if args.force else ensure_tiny(args.cache_dir, spec)
    print(path)
    return 0
