"""Markdown for people: the pipeline's summary (a Prefect artifact) around the gate's decision.

The top of the registry: it reads what register and the gate return, and neither imports it.
"""

from __future__ import annotations

from collections.abc import Mapping

from metaembed.markdown_table import markdown_table
from metaembed.registry.decision import Decision, decision_markdown
from metaembed.registry.register import Registration
from metaembed.registry.table import budget_markdown

__all__ = ["decision_markdown", "pipeline_markdown"]


def pipeline_markdown(stages: Mapping[str, str], registration: Registration, decision: Decision,
                      dry_run: bool = False) -> str:
    registered = "a new version" if registration.created else "already registered: nothing new"
    note = "\n\n_Dry run (`pipeline.promote: false`): no alias was moved._" if dry_run else ""
    linked = f" Index `{registration.index_dir}` linked." if registration.index_tag else \
        " No index stage output: the gate used the sweep's synthetic latency."
    return "\n\n".join([
        "# metaembed pipeline",
        markdown_table(["stage", "status"], [[name, status] for name, status in stages.items()]),
        f"**Model** `{registration.uri}` ({registered}), sha256 `{registration.model_sha256[:16]}`; "
        f"training MLflow run `{registration.train_run_id}` in `{registration.tracking_uri}`.{linked}",
        decision_markdown(decision) + note,
        budget_markdown(registration.table, registration.index_latency),
    ])
