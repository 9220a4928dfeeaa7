"""The main job as a Prefect flow: data -> DVC stages -> register -> promotion gate.

    python flows/pipeline.py [--params params.yaml]      (what `make run` does)

`metaembed data ensure` restores data/raw, then each stage of params.yaml `pipeline.stages` runs
as `dvc repro <stage>`, so DVC skips what has not changed. The trained model is registered in
MLflow (nothing new when the model is unchanged), with the index stage's measured latency and a
link to its index, and the promotion gate picks the budget it is served at and decides whether
it becomes the `champion`. A markdown artifact on the flow run summarises stages, budgets, quality,
cost, the decision and the MLflow run.

In MLflow, each flow run is one parent run ("pipeline <flow run name>") whose children are the runs
the stages create (pretrain, train): the flow hands the parent's id to the stage commands in
METAEMBED_PARENT_RUN_ID. The parent ends FINISHED or FAILED with the flow, and carries what each
stage did, the model, the gate's decision (`pipeline.*` tags) and the summary as its description.

Without PREFECT_API_URL, Prefect starts a temporary local server on 127.0.0.1 for the run, with
its database under PREFECT_HOME (.prefect/ in the project). flows/serve.py schedules this flow.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))  # before prefect reads its settings

from prefect import flow  # noqa: E402

from metaembed.config import load_section  # noqa: E402
from metaembed.orchestration.params import PipelineParams  # noqa: E402
from metaembed.orchestration.parent import open_parent, outcome_tags  # noqa: E402
from metaembed.orchestration.registry_steps import promotion_gate, publish_summary, register_model  # noqa: E402
from metaembed.orchestration.stages import check_stages, dvc_stage, ensure_data, is_transient  # noqa: E402
from metaembed.tracking.redact import redact_credentials  # noqa: E402


@flow(name="metaembed-pipeline", log_prints=True)
def pipeline(params: str = "params.yaml", root: str | None = None) -> dict:
    """prepare -> train -> evaluate -> sweep -> index (DVC) -> register -> promotion gate."""
    base = Path(root or ROOT).resolve()
    params_path = str(Path(params) if Path(params).is_absolute() else base / params)
    settings = load_section("pipeline", PipelineParams, params_path)
    check_stages(base, settings.stages)
    retry = {"retries": settings.retries, "retry_delay_seconds": settings.retry_delay_seconds,
             "retry_condition_fn": is_transient}

    with open_parent(base, params_path, settings.stages) as parent:
        ensure_data.with_options(**retry)(str(base), params_path, parent.run_id)
        stages = {}
        for stage in settings.stages:
            stages[stage] = dvc_stage.with_options(**retry)(stage, str(base), parent.run_id)
            parent.tag(outcome_tags(stages))  # as it goes: a failed flow's parent shows how far it got
        registration = register_model.with_options(**retry)(str(base), params_path)
        decision = promotion_gate.with_options(**retry)(str(base), params_path, registration.version,
                                                        not settings.promote)
        parent.tag(outcome_tags(stages, registration, decision, dry_run=not settings.promote))
        parent.describe(publish_summary(stages, registration, decision, dry_run=not settings.promote))
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
        print(f"\npipeline failed: {redact_credentials(state.message or '')}", file=sys.stderr)
        return 1
    summary = state.result()
    print(f"\npipeline done: {summary['model']} ({'new' if summary['created'] else 'nothing new'}); "
          f"gate: {summary['gate']} ({summary['reason']}); champion: "
          f"{'v' + summary['champion'] if summary['champion'] else 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
