"""`metaembed tune`: an Optuna study over the nested group sizes (params.yaml `tune:`)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file")
    parser.add_argument("--trials", type=int, default=6, help="trials this process runs (default 6); 0: only (re)write the report of the study")
    parser.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    parser.add_argument("--storage", help="RDB URL (e.g. postgresql://user@host/db) or journal file path; "
                                          "default tune.storage, else <tune.out_dir>/<study>.journal")
    parser.add_argument("--study", help="study name (default tune.study_name); an existing study is continued")
    parser.add_argument("--mode", choices=["single", "multi"], help="override tune.mode")
    parser.add_argument("--worker", type=int, default=0,
                        help="worker index when several processes share a study: offsets the sampler seed")


def run(args: argparse.Namespace) -> int:
    import json

    from metaembed.tuning.study import TuneOptions, run_study

    if args.trials < 0:
        raise SystemExit("--trials must be 0 (report only) or more")
    summary = run_study(TuneOptions(
        params_path=args.params, trials=args.trials, timeout_s=args.timeout, worker=args.worker,
        tune_overrides={"storage": args.storage, "study_name": args.study, "mode": args.mode}))
    print(f"study {summary['study']} ({summary['storage']}): trials {summary['states']}; this worker "
          f"{summary['worker_wall_seconds']:.0f} s")
    baseline = summary.get("params_yaml_trial")
    if baseline:
        print(f"params.yaml's own configuration (trial {baseline['number']}): {baseline['values']}")
    if "best" in summary:
        best = summary["best"]
        print(f"best trial {best['number']}: mean {summary['quality_metric']} {best['values'][0]:.4f}; "
              f"{json.dumps(best['config'])}")
        if best.get("source") == "params.yaml":
            print("the best trial is params.yaml's own configuration: nothing to change")
        elif "patch" in summary:
            print(f"apply it:  git apply {summary['patch']}   (or edit params.yaml from {summary['best_params']})")
            print(f"or as a DVC experiment:  {summary['dvc_exp_run']}")
        else:
            print(f"no patch: {summary.get('patch_error')}; as a DVC experiment:  {summary['dvc_exp_run']}")
    for row in summary.get("pareto_front", []):
        print(f"Pareto trial {row['number']}: {dict(zip(summary['objectives'], row['values']))} {json.dumps(row['config'])}")
    print(f"plots: {sorted(p for p in summary['plots'].values() if not p.startswith('skipped'))}; "
          f"MLflow parent run {summary['parent_run_id']}")
    return 0
