"""Markdown for people: the gate's decision and the pipeline's summary (a Prefect artifact).

The top of the registry: it reads what register and the gate return, and neither imports it.
"""

from __future__ import annotations

from collections.abc import Mapping

from metaembed.registry.gate import Decision
from metaembed.registry.register import Registration
from metaembed.markdown_table import markdown_table
from metaembed.registry.table import budget_markdown


def decision_markdown(decision: Decision) -> str:
    rows = [[check.name, check.value, check.limit, check.champion, "pass" if check.passed else "FAIL"]
            for check in decision.checks]
    return (f"**Promotion gate: {decision.outcome}** ({decision.model_name} v{decision.candidate}, "
            f"budget {decision.budget}, metric `{decision.metric}`, champion "
            f"{'v' + decision.champion if decision.champion else 'none'}): {decision.reason}\n\n"
            + markdown_table(["check", "candidate", "limit", "champion", "result"], rows))


def pipeline_markdown(stages: Mapping[str, str], registration: Registration, decision: Decision,
                      dry_run: bool = False) -> str:
    registered = "a new version" if registration.created else "already registered: nothing new"
    note = "\n\n_Dry run (`pipeline.promote: false`): no alias was moved._" if dry_run else ""
    return "\n\n".join([
        "# metaembed pipeline",
        markdown_table(["stage", "status"], [[name, status] for name, status in stages.items()]),
        f"**Model** `{registration.uri}` ({registered}), sha256 `{registration.model_sha256[:16]}`; "
        f"training MLflow run `{registration.train_run_id}` in `{registration.tracking_uri}`.",
        decision_markdown(decision) + note,
        budget_markdown(registration.table),
    ])
