"""`metaembed pretrain`: the DVC `pretrain` stage (params.yaml sections pretrain, backbone)."""

from __future__ import annotations

import argparse

from metaembed.commands import training_options


def configure(parser: argparse.ArgumentParser) -> None:
    training_options.configure(parser, "pretrain")


def run(args: argparse.Namespace) -> int:
    from metaembed.pretraining.run import pretrain

    report = pretrain(training_options.load(args, "pretrain"))
    metrics = {k: round(v, 4) for k, v in sorted(report["metrics"].items())}
    print(f"pretrained backbone in {report['backbone']}: {metrics}; MLflow run {report['mlflow_run_id']}")
    return 0
