"""`metaembed register`: register the trained model (pipeline step after the sweep)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (sections registry, train, tracking)")


def run(args: argparse.Namespace) -> int:
    from metaembed.registry.register import register
    from metaembed.registry.store import RegistryError
    from metaembed.stage_outputs import StageOutputError

    try:
        registration = register(args.params)
    except (StageOutputError, RegistryError) as error:
        print(f"error: {error}")
        return 1
    what = "registered as a new version" if registration.created else "already registered: nothing new"
    print(f"{registration.uri} ({what}); alias challenger -> v{registration.version}; "
          f"training run {registration.train_run_id}")
    return 0
