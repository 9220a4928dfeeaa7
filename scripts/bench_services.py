"""Measure the team services of `metaembed services` on this machine (docs/scale-out.md, "Measured"):
MLflow logging throughput with 1 and 4 concurrent writers, and Optuna trials per minute on PostgreSQL
with 1 and 3 worker processes.

    make services && eval "$(.venv/bin/metaembed services env)"
    python scripts/bench_services.py --out artifacts/bench/services.json --plot docs/scale_out_services.png

Trials are shortened (--steps training steps, --queries per MMEB subset) so both arms fit in minutes;
the point is the storage and the workers, not the trial's quality.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _writer(uri: str, experiment_id: str, calls: int, start, done) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    run = client.create_run(experiment_id, run_name="bench-writer")
    start.wait()
    began = time.perf_counter()
    for step in range(calls):
        client.log_metric(run.info.run_id, "bench/value", step * 0.5, step=step)
    done.put(time.perf_counter() - began)
    client.set_terminated(run.info.run_id)


def logging_throughput(uri: str, writers: int, calls: int) -> dict:
    """`writers` processes each send `calls` log_metric requests at once; metric points per second."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    name = "bench-services"
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    context = multiprocessing.get_context("spawn")
    start, done = context.Barrier(writers + 1), context.Queue()
    processes = [context.Process(target=_writer, args=(uri, experiment_id, calls, start, done)) for _ in range(writers)]
    for process in processes:
        process.start()
    start.wait()
    began = time.perf_counter()
    seconds = [done.get(timeout=600) for _ in processes]
    wall = time.perf_counter() - began
    for process in processes:
        process.join()
    return {"writers": writers, "calls_each": calls, "wall_s": round(wall, 2),
            "points_per_s": round(writers * calls / wall, 1), "slowest_writer_s": round(max(seconds), 2)}


def tune_rate(storage: str, workers: int, trials: int, steps: int, queries: int, scratch: Path) -> dict:
    """`trials` trials split over `workers` processes of `metaembed tune` on one new study."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    study = f"bench-{workers}w-{uuid.uuid4().hex[:6]}"
    params["tune"] |= {"study_name": study, "storage": storage, "out_dir": str(scratch / "tune"),
                       "pruning": {"enabled": False, "startup_trials": 2, "warmup_steps": 0},
                       "eval_queries_per_subset": queries,
                       "train": {"max_steps": steps, "warmup_steps": steps // 4, "val_every_n_steps": steps,
                                 "checkpoint_every_n_steps": steps}}
    path = scratch / f"params-{study}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    each = [trials // workers + (k < trials % workers) for k in range(workers)]
    began = time.perf_counter()
    logs = [scratch / f"{study}-worker{k}.log" for k in range(workers)]
    processes = [subprocess.Popen([sys.executable, "-m", "metaembed.cli", "tune", "--params", str(path),
                                   "--trials", str(n), "--worker", str(k)], cwd=ROOT, stdout=log.open("w"),
                                  stderr=subprocess.STDOUT, env=os.environ | {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // workers))})
                 for k, (n, log) in enumerate(zip(each, logs))]
    codes = [process.wait() for process in processes]
    wall = time.perf_counter() - began
    if any(codes):
        raise SystemExit(f"a tune worker failed (exit codes {codes}); see {', '.join(map(str, logs))}")
    import optuna

    states = [t.state.name for t in optuna.load_study(study_name=study, storage=storage).trials]
    return {"workers": workers, "trials": trials, "steps": steps, "queries_per_subset": queries, "wall_s": round(wall, 1),
            "trials_per_min": round(60 * states.count("COMPLETE") / wall, 2), "states": states, "study": study}


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    logs = results["logging"]
    axes[0].bar([f"{r['writers']} writer(s)" for r in logs], [r["points_per_s"] for r in logs], color="#4c72b0")
    axes[0].set_title("MLflow server on PostgreSQL:\nmetric points logged per second")
    tunes = results["tuning"]
    axes[1].bar([f"{r['workers']} worker(s)" for r in tunes], [r["trials_per_min"] for r in tunes], color="#dd8452")
    axes[1].set_title(f"Optuna on PostgreSQL: trials per minute\n({tunes[0]['steps']}-step trials, 2 cores)")
    for axis in axes:
        axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "bench" / "services.json")
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--calls", type=int, default=300, help="log_metric requests per writer")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--queries", type=int, default=10)
    args = parser.parse_args()
    from metaembed.services import settings

    services = settings.load()
    uri = os.environ.get("MLFLOW_TRACKING_URI") or services.tracking_uri
    storage = services.database_url("optuna")
    scratch = args.out.parent / "services-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    results = {"tracking_uri": uri, "storage": storage, "cpus": os.cpu_count(),
               "logging": [logging_throughput(uri, n, args.calls) for n in (1, 4)],
               "tuning": [tune_rate(storage, n, args.trials, args.steps, args.queries, scratch) for n in (1, 3)]}
    args.out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
