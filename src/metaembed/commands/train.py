"""`metaembed train`: the DVC `train` stage (params.yaml sections backbone, model, loss, train)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file")
    parser.add_argument("--max-steps", type=int, help="override train.max_steps (quick checks)")


def run(args: argparse.Namespace) -> int:
    from metaembed.training.run import TrainConfig, train

    overrides = {"train.max_steps": args.max_steps} if args.max_steps is not None else None
    config = TrainConfig.from_file(args.params, overrides)  # validated like the file: e.g. above warm-up
    report = train(config)
    if report:
        metrics = report["metrics"]
        shown = {k: round(v, 4) for k, v in sorted(metrics.items()) if k.startswith(("val/", "train/loss", "steps", "wall"))}
        print(f"trained: {shown}; MLflow run {report['mlflow_run_id']}")
    return 0
