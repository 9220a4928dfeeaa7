"""The pipeline flow's in-process steps: register the trained model, run the promotion gate, and
publish the summary artifact. Errors and the summary name the store with credentials masked."""

from __future__ import annotations

from collections.abc import Mapping

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from metaembed.config import load_root
from metaembed.tracking.redact import redact_credentials, redacted_errors

ARTIFACT_KEY = "metaembed-pipeline"


@task(name="register", cache_policy=NO_CACHE)
def register_model(root: str, params: str):
    from metaembed.registry.register import register

    with redacted_errors():
        registration = register(params, root)
    print(f"{registration.uri}: {'new version' if registration.created else 'already registered, nothing new'}")
    return registration


@task(name="promotion-gate", cache_policy=NO_CACHE)
def promotion_gate(root: str, params: str, version: str, dry_run: bool):
    from metaembed.registry.gate import promote
    from metaembed.registry.store import registry_client

    with redacted_errors():
        settings = load_root(params)  # read and checked once
        client = registry_client(settings.tracking, root)
        decision = promote(client, settings.registry.model_name, settings.promotion, version, dry_run,
                           index_dtype=settings.index.dtype)
    print(redact_credentials(f"promotion gate on v{decision.candidate}: {decision.outcome} at budget "
                             f"{decision.budget} ({decision.reason})"))
    return decision


def publish_summary(stages: Mapping[str, str], registration, decision, dry_run: bool) -> str:
    """The flow run's markdown artifact (stages, model, store, gate, budgets); returns its text."""
    from metaembed.registry.report import pipeline_markdown

    summary = redact_credentials(pipeline_markdown(stages, registration, decision, dry_run=dry_run))
    create_markdown_artifact(markdown=summary, key=ARTIFACT_KEY,
                             description="stages, budgets, quality, cost, the gate's decision, the MLflow run")
    return summary
