"""The `metaembed` command.

Each sub-command lives in a module of `metaembed.commands` (or `metaembed.benchmarks`) that
exposes `configure(parser)` and `run(args) -> int`. Those modules import torch and friends
inside `run`, so building the parser (and `metaembed --help`) stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from metaembed.config import ParamsError

# (command words, module, one-line help): ("bench", "scoring") becomes `metaembed bench scoring`.
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("demo",), "metaembed.commands.demo",
     "build the tiny model, encode generated queries and candidates, print scores at every budget"),
    (("backbone", "build-tiny"), "metaembed.commands.backbone",
     "build (or rebuild) the offline tiny Qwen2-VL-family backbone"),
    (("data", "synth"), "metaembed.commands.data_synth",
     "write the synthetic MMEB/ViDoRe-format benchmark into data/raw from params.yaml `data:`"),
    (("data", "ensure"), "metaembed.commands.data_ensure",
     "make data/raw what data.dvc pins: local cache, DVC remote, or regeneration; then verify"),
    (("data", "prepare"), "metaembed.commands.data_prepare",
     "the DVC prepare stage: validate data/raw, write manifests and counts to data/prepared"),
    (("pretrain",), "metaembed.commands.pretrain",
     "caption-pretrain the backbone on the training images (the DVC pretrain stage), tracked in MLflow"),
    (("train",), "metaembed.commands.train",
     "train MetaEmbed on the prepared data (the DVC train stage), tracked in MLflow"),
    (("evaluate",), "metaembed.commands.evaluate",
     "MMEB Precision@1 and ViDoRe nDCG@5 at every budget (the DVC evaluate stage), logged to MLflow"),
    (("sweep",), "metaembed.commands.sweep",
     "quality, index size, FLOPs, latency and encoding rate per budget, Pareto frontier (DVC sweep stage)"),
    (("baselines",), "metaembed.commands.baselines",
     "train and evaluate MetaEmbed, no-MMR, single-vector and token-level over seeds; results table"),
    (("bench", "scoring"), "metaembed.benchmarks.scoring",
     "measure MaxSim throughput against this machine's matmul and bandwidth roofline"),
    (("bench", "index"), "metaembed.benchmarks.index",
     "multi-vector index search: exhaustive vs two-stage latency and recall per budget, open time, memory"),
    (("bench", "index-quality"), "metaembed.benchmarks.index_quality",
     "quality per index storage dtype and two-stage recall per first_stage_k, on the evaluation embeddings"),
    (("bench", "service"), "metaembed.benchmarks.service",
     "load-test `metaembed serve` on loopback: p50/p99 latency and qps per budget and concurrency"),
    (("bench", "train"), "metaembed.benchmarks.training",
     "training samples/s, tokens/s and MFU, and encoding rate, of a real-size MetaEmbed (GPU)"),
    (("register",), "metaembed.commands.register",
     "register the trained model in MLflow (once per distinct model); alias it challenger"),
    (("promote",), "metaembed.commands.promote",
     "promotion gate: move champion to the challenger if quality and cost allow (--dry-run: table only)"),
    (("ui",), "metaembed.commands.ui",
     "open the MLflow UI on 127.0.0.1 over the project's tracking store and registry"),
    (("dashboard",), "metaembed.commands.dashboard",
     "open optuna-dashboard on 127.0.0.1 over the tuning studies (history, importances, Pareto front)"),
    (("services",), "metaembed.commands.services",
     "PostgreSQL, an MLflow server on it and a Prefect server on 127.0.0.1 (start | stop | status | env)"),
    (("tune",), "metaembed.commands.tune",
     "Optuna study over the nested group sizes, temperature and lr; trials nested in MLflow; best as a patch"),
    (("index", "stage"), "metaembed.commands.index_stage",
     "the DVC index stage: index the evaluation corpus from the cached embeddings; search time per budget"),
    (("index", "build"), "metaembed.commands.index_build",
     "encode a folder of candidates (ViDoRe, MMEB-eval, images and .txt) with a model into a searchable index"),
    (("search",), "metaembed.commands.search",
     "search a built index with a text and/or image query at a budget (RQxRC); prints the top k"),
    (("serve",), "metaembed.commands.serve",
     "HTTP search service over a built index (POST /search, GET /health, GET /budgets) on 127.0.0.1"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metaembed", description="MetaEmbed multimodal retrieval")
    subparsers = {(): parser.add_subparsers(dest="command", required=True, metavar="COMMAND")}
    for words, module_name, help_text in COMMANDS:
        for depth in range(1, len(words)):
            group = words[:depth]
            if group not in subparsers:
                group_parser = subparsers[group[:-1]].add_parser(group[-1], help=f"{group[-1]} commands")
                subparsers[group] = group_parser.add_subparsers(dest=f"command{depth}", required=True, metavar="COMMAND")
        leaf = subparsers[words[:-1]].add_parser(words[-1], help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        module.configure(leaf)
        leaf.set_defaults(_run=module.run)
    return parser


def _print_redacted(kind, error, trace) -> None:
    # A store's password reaches tracebacks through mlflow's own messages ("API request to
    # http://user:pw@host/... failed"). Imported here: metaembed.tracking loads mlflow, which
    # `metaembed --help` should not wait for.
    from metaembed.tracking.redact import redacting_excepthook

    redacting_excepthook(kind, error, trace)


def main(argv: list[str] | None = None) -> int:
    sys.excepthook = _print_redacted  # an uncaught error is printed with credentials masked
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except ParamsError as error:  # already names the file, the key and the fix: no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
