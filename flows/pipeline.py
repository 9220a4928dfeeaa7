"""The main job as a Prefect flow: data -> DVC stages -> register -> promotion gate.

    python flows/pipeline.py [--params params.yaml]      (what `make run` does)

`metaembed data ensure` restores data/raw, then each stage of params.yaml `pipeline.stages` runs
as `dvc repro <stage>`, so DVC skips what has not changed. The trained model is registered in
MLflow (nothing new when the model is unchanged) and the promotion gate decides whether it
becomes the `champion`. A markdown artifact on the flow run summarises stages, budgets, quality,
cost, the decision and the MLflow run.

Without PREFECT_API_URL, Prefect starts a temporary local server on 127.0.0.1 for the run, with
its database under PREFECT_HOME (.prefect/ in the project). flows/serve.py schedules this flow.
"""

from __future__ import annotations

import codecs
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))  # before prefect reads its settings

import yaml  # noqa: E402
from prefect import flow, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402

from metaembed.config import load_section  # noqa: E402

ARTIFACT_KEY = "metaembed-pipeline"
TAIL_LINES = 40
# Failures worth another try: another process holds a lock, or a network store hiccuped. Anything
# else (bad params, a bug, a diverged training) fails the same way again, so it stops the flow.
TRANSIENT_MARKERS = ("database is locked", "Unable to acquire lock", "Connection refused", "Connection reset",
                     "Temporary failure in name resolution", "timed out", "503 Service Unavailable")


class ScheduleParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deployment: str = Field("nightly", min_length=1)
    cron: str = Field("0 3 * * *", min_length=9)
    timezone: str = "UTC"
    port: int = Field(4200, gt=0, lt=65536)  # the local Prefect server flows/serve.py starts


class PipelineParams(BaseModel):
    """params.yaml `pipeline:`."""

    model_config = ConfigDict(extra="forbid")

    stages: list[str] = Field(["prepare", "pretrain", "train", "evaluate", "sweep"], min_length=1)
    retries: int = Field(2, ge=0)  # for transient failures only (TRANSIENT_MARKERS, registry errors)
    retry_delay_seconds: list[float] = Field([10.0, 60.0], min_length=1)  # back-off, one per retry
    promote: bool = True  # false: the gate only reports (a dry run)
    schedule: ScheduleParams = ScheduleParams()


class StageFailed(RuntimeError):
    """A command of the pipeline exited non-zero; the message ends with its own last lines."""

    def __init__(self, stage: str, returncode: int, tail: str):
        self.stage, self.returncode = stage, returncode
        self.transient = any(marker in tail for marker in TRANSIENT_MARKERS)
        super().__init__(f"stage {stage!r} failed (exit {returncode}); its last output:\n{tail}")


def run_command(command: list[str], cwd: Path, stage: str) -> str:
    """Run `command`, streaming its output through; return the output or raise StageFailed."""
    env = dict(os.environ)
    # dvc.yaml calls `metaembed`: this interpreter's scripts first, also when the venv is not active.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    seen = []
    while chunk := process.stdout.read1(1 << 16):
        text = decoder.decode(chunk)
        sys.stdout.write(text)
        sys.stdout.flush()
        seen.append(text)
    process.wait()
    output = "".join(seen)
    if process.returncode != 0:
        lines = [line for line in output.replace("\r", "\n").splitlines() if line.strip()]
        raise StageFailed(stage, process.returncode, "\n".join(lines[-TAIL_LINES:]))
    return output


def is_transient(task, task_run, state) -> bool:
    """Prefect's retry condition: retry StageFailed only when transient, and registry errors."""
    from metaembed.registry.store import RegistryError

    try:
        state.result()
    except StageFailed as error:
        return error.transient
    except RegistryError:
        return True
    except Exception:
        return False
    return False


def check_stages(root: Path, stages: list[str]) -> None:
    """Fail before running anything when pipeline.stages names a stage dvc.yaml does not have."""
    dvc_file = root / "dvc.yaml"
    if not dvc_file.is_file():
        raise FileNotFoundError(f"{dvc_file} not found: run the pipeline from the project root")
    known = set((yaml.safe_load(dvc_file.read_text()) or {}).get("stages") or {})
    missing = [stage for stage in stages if stage not in known]
    if missing:
        raise ValueError(f"pipeline.stages lists {missing}, which {dvc_file} does not define "
                         f"(it has {sorted(known)}): add the stages or remove them from pipeline.stages")


@task(name="data-ensure", cache_policy=NO_CACHE)
def ensure_data(root: str, params: str) -> str:
    run_command([sys.executable, "-m", "metaembed.cli", "data", "ensure", "--params", params], Path(root), "data ensure")
    return "ok"


@task(name="dvc-stage", task_run_name="dvc repro {stage}", cache_policy=NO_CACHE)
def dvc_stage(stage: str, root: str) -> str:
    output = run_command([sys.executable, "-m", "dvc", "repro", stage], Path(root), stage)
    return "skipped (unchanged)" if f"Stage '{stage}' didn't change, skipping" in output else "ran"


@task(name="register", cache_policy=NO_CACHE)
def register_model(root: str, params: str):
    from metaembed.registry.register import register

    registration = register(params, root)
    print(f"{registration.uri}: {'new version' if registration.created else 'already registered, nothing new'}")
    return registration


@task(name="promotion-gate", cache_policy=NO_CACHE)
def promotion_gate(root: str, params: str, version: str, dry_run: bool):
    from metaembed.registry.gate import promote
    from metaembed.registry.params import PromotionParams, RegistryParams
    from metaembed.registry.store import registry_client
    from metaembed.tracking import TrackingParams

    client = registry_client(load_section("tracking", TrackingParams, params), root)
    name = load_section("registry", RegistryParams, params).model_name
    decision = promote(client, name, load_section("promotion", PromotionParams, params), version, dry_run)
    print(f"promotion gate on v{decision.candidate}: {decision.outcome} ({decision.reason})")
    return decision


@flow(name="metaembed-pipeline", log_prints=True)
def pipeline(params: str = "params.yaml", root: str | None = None) -> dict:
    """prepare -> train -> evaluate -> sweep (DVC) -> register -> promotion gate."""
    from metaembed.registry.report import pipeline_markdown

    base = Path(root or ROOT).resolve()
    params_path = str(Path(params) if Path(params).is_absolute() else base / params)
    settings = load_section("pipeline", PipelineParams, params_path)
    check_stages(base, settings.stages)
    retry = {"retries": settings.retries, "retry_delay_seconds": settings.retry_delay_seconds,
             "retry_condition_fn": is_transient}

    ensure_data.with_options(**retry)(str(base), params_path)
    stages = {stage: dvc_stage.with_options(**retry)(stage, str(base)) for stage in settings.stages}
    registration = register_model.with_options(**retry)(str(base), params_path)
    decision = promotion_gate.with_options(**retry)(str(base), params_path, registration.version,
                                                    not settings.promote)
    summary = pipeline_markdown(stages, registration, decision, dry_run=not settings.promote)
    create_markdown_artifact(markdown=summary, key=ARTIFACT_KEY,
                             description="stages, budgets, quality, cost, the gate's decision, the MLflow run")
    return {"stages": stages, "model": registration.uri, "created": registration.created,
            "train_run_id": registration.train_run_id, "gate": decision.outcome, "reason": decision.reason,
            "champion": decision.candidate if decision.promote and settings.promote else decision.champion}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file, relative to the project root")
    args = parser.parse_args(argv)
    state = pipeline(params=args.params, return_state=True)
    if not state.is_completed():
        print(f"\npipeline failed: {state.message}", file=sys.stderr)
        return 1
    summary = state.result()
    print(f"\npipeline done: {summary['model']} ({'new' if summary['created'] else 'nothing new'}); "
          f"gate: {summary['gate']} ({summary['reason']}); champion: "
          f"{'v' + summary['champion'] if summary['champion'] else 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
