"""The pipeline flow's MLflow parent run: opened per flow run, tagged with what the flow did.

The runs list then reads one row per pipeline run (its stages' runs folded under it), with
`pipeline.stage.<name>` (ran / skipped), the model and the gate's decision as columns to pick.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from metaembed.tracking.pipeline_run import PipelineRun

STAGE_TAG = "pipeline.stage."  # + the stage's name: "ran" or "skipped (unchanged)"


@contextmanager
def open_parent(root: Path, params_path: str, stages: list[str]) -> Iterator[PipelineRun]:
    """The parent run of the Prefect flow run in progress (the same one again when the flow run is
    retried), named after it, tagged with the code, params and data it starts from."""
    from prefect.runtime import flow_run

    from metaembed.config import load_section
    from metaembed.tracking import TrackingParams
    from metaembed.tracking.pipeline_run import pipeline_run
    from metaembed.tracking.provenance import CODE_ROOT, run_tags

    tracking = load_section("tracking", TrackingParams, params_path)
    flow_run_id = flow_run.id or uuid.uuid4().hex  # None outside a flow run: a parent of its own
    tags = run_tags(root, params_path, code_root=CODE_ROOT) | {
        "metaembed.stage": "pipeline", "pipeline.stages": ", ".join(stages),
        "pipeline.flow_run_name": flow_run.name or "none"}
    with pipeline_run(tracking, root, flow_run_id, f"pipeline {flow_run.name or ''}".strip(), tags) as parent:
        yield parent


def outcome_tags(stages: Mapping[str, str], registration=None, decision=None, dry_run: bool = False) -> dict[str, str]:
    """The parent's tags for the stages done so far and, once known, the model and the gate's decision."""
    tags = {f"{STAGE_TAG}{name}": status for name, status in stages.items()}
    if registration is not None:
        tags |= {"pipeline.model": registration.uri, "pipeline.model_new": str(registration.created).lower(),
                 "pipeline.train_run_id": registration.train_run_id}
    if decision is not None:
        champion = decision.candidate if decision.promote and not dry_run else decision.champion
        tags |= {"pipeline.gate": decision.outcome + (" (dry run)" if dry_run else ""),
                 "pipeline.gate_reason": decision.reason, "pipeline.served_budget": decision.budget,
                 "pipeline.champion": f"v{champion}" if champion else "none"}
    return tags
