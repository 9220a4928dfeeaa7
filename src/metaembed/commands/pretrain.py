"""`metaembed pretrain`: the DVC `pretrain` stage (params.yaml sections pretrain, backbone)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file")
    parser.add_argument("--max-steps", type=int, help="override pretrain.max_steps (quick checks)")


def run(args: argparse.Namespace) -> int:
    from metaembed.pretraining.run import PretrainConfig, pretrain

    overrides = {"pretrain.max_steps": args.max_steps} if args.max_steps is not None else None
    config = PretrainConfig.from_file(args.params, overrides)  # validated like the file: e.g. above warm-up
    report = pretrain(config)
    metrics = {k: round(v, 4) for k, v in sorted(report["metrics"].items())}
    print(f"pretrained backbone in {report['backbone']}: {metrics}; MLflow run {report['mlflow_run_id']}")
    return 0
