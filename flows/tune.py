"""The tuning study as a Prefect flow: prepared data and backbone, N parallel `metaembed tune` workers, report.

    python flows/tune.py --trials 6 [--workers 2] [--params params.yaml] [--storage URL]
                         [--deployment metaembed-tune-worker/team]

Each worker is its own process (`metaembed tune --worker k`) on the study's shared storage (the
journal file under tune.out_dir, or tune.storage / --storage), so a crash of one leaves the others
and the storage intact, and re-running the flow continues the same study. With --deployment, each
worker is a flow run of that deployment (flows/deploy.py), executed by the work pool's process
workers on any machine, and retried once by Prefect when its process fails (a killed trial is
marked failed by the study's heartbeat and re-run with the same params). When every worker is
done, `metaembed tune --trials 0` writes the report over all trials (summary, plots, best params
patch, logged to the MLflow parent run) and the flow publishes it as a markdown artifact.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))  # before prefect reads its settings

from prefect import flow, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from metaembed.config import load_section  # noqa: E402
from metaembed.orchestration.fanout import fan_out  # noqa: E402
from metaembed.orchestration.stages import dvc_stage, is_transient, run_command  # noqa: E402
from metaembed.tuning.report import summary_markdown  # noqa: E402
from metaembed.tuning.params import TuneParams  # noqa: E402

ARTIFACT_KEY = "metaembed-tune"


def split_trials(trials: int, workers: int) -> list[int]:
    """Trials per worker, as even as possible; workers beyond the trial count get none."""
    if trials < 1 or workers < 1:
        raise ValueError(f"need trials >= 1 and workers >= 1, got trials={trials}, workers={workers}")
    return [n for n in (trials // workers + (k < trials % workers) for k in range(workers)) if n]


def _command(params: str, trials: int, worker: int, storage: str | None) -> list[str]:
    command = [sys.executable, "-m", "metaembed.cli", "tune", "--params", params, "--trials", str(trials),
               "--worker", str(worker)]
    return command + (["--storage", storage] if storage else [])


def _worker(root: str, params: str, trials: int, worker: int, storage: str | None = None) -> str:
    return run_command(_command(params, trials, worker, storage), Path(root), f"tune worker {worker}")


tune_worker = task(name="tune-worker", task_run_name="tune worker {worker} ({trials} trials)",
                   cache_policy=NO_CACHE)(_worker)

# The deployed form of one worker (flows/deploy.py). Prefect retries it once when its process fails
# (e.g. killed with its machine); the retry's first ask fails the killed trial, once its heartbeat is
# older than tune.heartbeat_grace_s, and re-runs it with the same params.
tune_worker_flow = flow(name="metaembed-tune-worker", flow_run_name="tune worker {worker} ({trials} trials)",
                        retries=1, retry_delay_seconds=10, log_prints=True)(_worker)


@task(name="tune-report", cache_policy=NO_CACHE)
def tune_report(root: str, params: str, storage: str | None) -> dict:
    run_command(_command(params, 0, 0, storage), Path(root), "tune report")
    tune = load_section("tune", TuneParams, params)
    return json.loads((Path(root) / tune.out_dir / tune.study_name / "summary.json").read_text())


@flow(name="metaembed-tune", log_prints=True)
def tune(trials: int = 6, workers: int = 1, params: str = "params.yaml", storage: str | None = None,
         root: str | None = None, prepare: bool = True, deployment: str | None = None) -> dict:
    """dvc repro pretrain (and prepare before it) -> `workers` parallel tune workers (tasks here, or flow
    runs of `deployment` on a work pool) -> report (markdown artifact)."""
    base = Path(root or ROOT).resolve()
    params_path = str(Path(params) if Path(params).is_absolute() else base / params)
    if prepare:
        dvc_stage.with_options(retries=2, retry_delay_seconds=[10, 60], retry_condition_fn=is_transient)(
            "pretrain", str(base))
    jobs = {f"tune worker {k} ({n} trials)": {"root": str(base), "params": params_path, "trials": n, "worker": k,
                                             "storage": storage}
            for k, n in enumerate(split_trials(trials, workers))}
    fan_out(jobs, deployment, tune_worker)
    summary = tune_report(str(base), params_path, storage)
    create_markdown_artifact(markdown=summary_markdown(summary), key=ARTIFACT_KEY,
                             description="trials, objective, best configuration and how to apply it")
    return summary


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6, help="trials in all, split over the workers")
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes (2 cores: 1 or 2)")
    parser.add_argument("--params", default="params.yaml", help="params file, relative to the project root")
    parser.add_argument("--storage", help="RDB URL or journal path (default: tune.storage / the journal file)")
    parser.add_argument("--deployment", help="run each worker as a flow run of this deployment "
                        "(flows/deploy.py: metaembed-tune-worker/team) on its work pool's workers")
    parser.add_argument("--no-prepare", action="store_true", help="skip `dvc repro pretrain` (prepared data and backbone exist)")
    args = parser.parse_args(argv)
    state = tune(trials=args.trials, workers=args.workers, params=args.params, storage=args.storage,
                 prepare=not args.no_prepare, deployment=args.deployment, return_state=True)
    if not state.is_completed():
        print(f"\ntuning failed: {state.message}", file=sys.stderr)
        return 1
    print("\n" + summary_markdown(state.result()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
