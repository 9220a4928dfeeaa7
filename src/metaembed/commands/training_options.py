"""The options `metaembed pretrain` and `metaembed train` share: the params file and `--max-steps`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the parser is built without importing what the commands run
    from metaembed.config import ParamsRoot


def configure(parser: argparse.ArgumentParser, section: str) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file")
    parser.add_argument("--max-steps", type=int, help=f"override {section}.max_steps (quick checks)")


def load(args: argparse.Namespace, section: str) -> ParamsRoot:
    """The params file with `--max-steps` applied before validation, so the override is checked like
    the file (e.g. still above `<section>.warmup_steps`)."""
    from metaembed.config import load_root

    overrides = {f"{section}.max_steps": args.max_steps} if args.max_steps is not None else None
    return load_root(args.params, overrides)
