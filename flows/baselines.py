"""The baselines comparison as a Prefect flow: every variant x seed as its own job, then the aggregate.

    python flows/baselines.py [--variants metaembed,single_vector] [--seeds 0,1,2] [--set KEY=VALUE ...]
                              [--deployment metaembed-baselines-run/team]

Each job is `metaembed baselines --variants V --seeds S --runs-only` (train and evaluate one run
into its folder under baselines.out_dir); without --deployment they run here one after another
(two cores hold one training), with it each is a flow run of that deployment (flows/deploy.py) that
the work pool's process workers execute at once, retried once by Prefect when it fails (a training
resumes from its last checkpoint). The last step, `metaembed baselines` over all of them, reuses
every finished run and writes the table, plot, MLflow run and docs/results.md as usual.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))  # before prefect reads its settings

from prefect import flow, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from metaembed.config import load_section  # noqa: E402
from metaembed.evaluation.params import BaselinesParams  # noqa: E402
from metaembed.orchestration.fanout import fan_out  # noqa: E402
from metaembed.orchestration.stages import dvc_stage, is_transient, run_command  # noqa: E402

ARTIFACT_KEY = "metaembed-baselines"


def command(params: str, overrides: list[str], out_dir: str | None, variant: str | None = None,
            seed: int | None = None, write_doc: bool = True) -> list[str]:
    """`metaembed baselines` for one job (variant and seed: --runs-only) or for the aggregate."""
    line = [sys.executable, "-m", "metaembed.cli", "baselines", "--params", params, "--no-progress"]
    for override in overrides:
        line += ["--set", override]
    if out_dir:
        line += ["--out-dir", out_dir]
    if variant is not None:
        return line + ["--variants", variant, "--seeds", str(seed), "--runs-only"]
    return line + ([] if write_doc else ["--no-doc"])


def _run(root: str, params: str, variant: str, seed: int, overrides: list[str], out_dir: str | None) -> str:
    return run_command(command(params, overrides, out_dir, variant, seed), Path(root), f"baselines {variant} seed {seed}")


baselines_job = task(name="baselines-run", task_run_name="{variant} seed {seed}", cache_policy=NO_CACHE)(_run)

# The deployed form of one job (flows/deploy.py).
baselines_run = flow(name="metaembed-baselines-run", flow_run_name="{variant} seed {seed}", retries=1,
                     retry_delay_seconds=10, log_prints=True)(_run)


@flow(name="metaembed-baselines", log_prints=True)
def baselines(variants: list[str] | None = None, seeds: list[int] | None = None, params: str = "params.yaml",
              overrides: list[str] | None = None, out_dir: str | None = None, deployment: str | None = None,
              root: str | None = None, prepare: bool = True, write_doc: bool = True) -> str:
    """dvc repro pretrain -> one job per variant x seed (tasks here, or flow runs of `deployment`) -> aggregate."""
    base = Path(root or ROOT).resolve()
    params_path = str(Path(params) if Path(params).is_absolute() else base / params)
    settings = load_section("baselines", BaselinesParams, params_path)
    overrides = overrides or []
    if prepare:
        dvc_stage.with_options(retries=2, retry_delay_seconds=[10, 60], retry_condition_fn=is_transient)(
            "pretrain", str(base))
    jobs = {f"{variant} seed {seed}": {"root": str(base), "params": params_path, "variant": variant, "seed": seed,
                                       "overrides": overrides, "out_dir": out_dir}
            for seed in (seeds or settings.seeds) for variant in (variants or list(settings.variants))}
    if deployment:
        fan_out(jobs, deployment, baselines_job)
    else:
        for job in jobs.values():  # two cores hold one training: one after another
            baselines_job(**job)
    names = ",".join(dict.fromkeys(job["variant"] for job in jobs.values()))
    seed_list = ",".join(dict.fromkeys(str(job["seed"]) for job in jobs.values()))
    table = run_command(command(params_path, overrides, out_dir, write_doc=write_doc)
                        + ["--variants", names, "--seeds", seed_list], base, "baselines aggregate")
    create_markdown_artifact(markdown=table, key=ARTIFACT_KEY, description="baselines side by side, over seeds")
    return table


def main(argv: list[str] | None = None) -> int:
    import argparse

    from metaembed.commands.baselines import _ints, _names

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file, relative to the project root")
    parser.add_argument("--variants", type=_names, help="comma-separated subset of baselines.variants")
    parser.add_argument("--seeds", type=_ints, help="comma-separated seeds (default: baselines.seeds)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a params value for every run, as `metaembed baselines --set`")
    parser.add_argument("--out-dir", help="run folders and aggregate (default: baselines.out_dir)")
    parser.add_argument("--no-doc", action="store_true", help="do not touch the results document")
    parser.add_argument("--deployment", help="run each job as a flow run of this deployment "
                        "(flows/deploy.py: metaembed-baselines-run/team) on its work pool's workers")
    parser.add_argument("--no-prepare", action="store_true", help="skip `dvc repro pretrain` (the backbone exists)")
    args = parser.parse_args(argv)
    state = baselines(variants=args.variants, seeds=args.seeds, params=args.params, overrides=args.overrides,
                      out_dir=args.out_dir, deployment=args.deployment, prepare=not args.no_prepare,
                      write_doc=not args.no_doc, return_state=True)
    if not state.is_completed():
        print(f"\nbaselines failed: {state.message}", file=sys.stderr)
        return 1
    print("\n" + state.result())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
