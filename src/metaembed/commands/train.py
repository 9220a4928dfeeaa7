"""`metaembed train`: the DVC `train` stage (params.yaml sections backbone, model, loss, train)."""

from __future__ import annotations

import argparse

from metaembed.commands import training_options


def configure(parser: argparse.ArgumentParser) -> None:
    training_options.configure(parser, "train")


def run(args: argparse.Namespace) -> int:
    from metaembed.training.run import train

    report = train(training_options.load(args, "train"))
    if report:  # only rank 0 reports
        metrics = report["metrics"]
        shown = {k: round(v, 4) for k, v in sorted(metrics.items()) if k.startswith(("val/", "train/loss", "steps", "wall"))}
        print(f"trained: {shown}; MLflow run {report['mlflow_run_id']}")
    return 0
