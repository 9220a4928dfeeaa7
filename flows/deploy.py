"""Deploy the flows to a Prefect work pool, for process workers on one machine or many: `make deploy`.

    python flows/deploy.py [--pool metaembed] [--name team] [--working-dir DIR]

On the Prefect server of PREFECT_API_URL (`make services`, or a team's own), this creates the
process work pool if it is missing and (re)applies three deployments into it:

    metaembed-pipeline/<name>          the main job (flows/pipeline.py)
    metaembed-tune-worker/<name>       one `metaembed tune` worker (flows/tune.py --deployment ...)
    metaembed-baselines-run/<name>     one baselines variant x seed (flows/baselines.py --deployment ...)

A worker on each machine executes them (`make worker`, i.e. `prefect worker start --pool metaembed
--type process`), in the project checkout at --working-dir (this checkout by default: every
machine needs one at that path, with the services' environment: `metaembed services env`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))  # before prefect reads its settings

POOL, NAME = "metaembed", "team"
# (file, flow function, what it does): flows/ is not a package, so Prefect loads each from its file.
FLOWS = (("pipeline.py", "pipeline", "prepare -> train -> evaluate -> sweep -> index (DVC) -> register -> gate"),
         ("tune.py", "tune_worker_flow", "one `metaembed tune` worker on the study's shared storage"),
         ("baselines.py", "baselines_run", "one baselines variant x seed, trained and evaluated"))


def ensure_pool(name: str) -> bool:
    """Create the process work pool `name` unless it exists; True when it was created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            return False
    return True


def build_deployments(name: str, pool: str, working_dir: Path) -> list:
    """The deployments of FLOWS into `pool`, run in `working_dir` (not yet sent to any server)."""
    from prefect.deployments.runner import RunnerDeployment

    return [RunnerDeployment.from_entrypoint(f"{ROOT / 'flows' / file}:{function}", name=name, description=text,
                                             work_pool_name=pool, job_variables={"working_dir": str(working_dir)})
            for file, function, text in FLOWS]


def deploy(name: str = NAME, pool: str = POOL, working_dir: Path = ROOT) -> dict[str, str]:
    """Pool and deployments on the server of PREFECT_API_URL; {"flow/deployment": id}."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():  # a temporary server would vanish with this process, deployments and all
        raise SystemExit("PREFECT_API_URL is not set: deployments need a Prefect server that workers "
                         "reach (make services, then eval \"$(.venv/bin/metaembed services env)\")")
    ensure_pool(pool)
    return {f"{d.flow_name}/{d.name}": str(d.apply(work_pool_name=pool))
            for d in build_deployments(name, pool, working_dir)}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default=POOL, help="process work pool (created when missing)")
    parser.add_argument("--name", default=NAME, help="deployment name of each flow")
    parser.add_argument("--working-dir", type=Path, default=ROOT,
                        help="the project checkout the workers run in (the same path on every machine)")
    args = parser.parse_args(argv)
    deployed = deploy(args.name, args.pool, args.working_dir.resolve())
    for full_name, deployment_id in deployed.items():
        print(f"deployed {full_name} ({deployment_id}) to pool {args.pool}")
    print(f"start a worker on each machine: prefect worker start --pool {args.pool} --type process; then e.g.\n"
          f"  python flows/tune.py --trials 6 --workers 3 --deployment metaembed-tune-worker/{args.name}\n"
          f"  python flows/baselines.py --deployment metaembed-baselines-run/{args.name}\n"
          f"  prefect deployment run metaembed-pipeline/{args.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
