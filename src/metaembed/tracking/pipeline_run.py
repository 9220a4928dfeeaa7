"""One MLflow run per pipeline run, with the runs its stages create as children.

The flow opens the parent (`pipeline_run`) and hands its id to the stage commands in the environment
variable PARENT_RUN_ENV; a stage that creates a run adds `parent_tags()` to it, which is all the
MLflow UI needs to nest it. An environment variable is no DVC dependency: dvc.lock and DVC's choice
to skip a stage do not change with it, and a stage started outside the flow simply has no parent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import RunStatus, RunTag
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from metaembed.tracking.params import TrackingParams
from metaembed.tracking.provenance import _truncate
from metaembed.tracking.redact import redact_credentials
from metaembed.tracking.store import _quoted, configure, resolve_tracking_uri

PARENT_RUN_ENV = "METAEMBED_PARENT_RUN_ID"
# The flow run a parent belongs to: a retried or resumed flow run finds its parent again by it.
FLOW_RUN_TAG = "pipeline.flow_run_id"
NOTE_TAG = "mlflow.note.content"  # the run page's description
ERROR_TAG = "pipeline.error"  # the first line of what stopped the flow


def parent_tags(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """`mlflow.parentRunId` when the flow handed a parent run to this process, else nothing."""
    parent = environ.get(PARENT_RUN_ENV, "").strip()
    return {MLFLOW_PARENT_RUN_ID: parent} if parent else {}


@dataclass(frozen=True)
class PipelineRun:
    client: MlflowClient
    run_id: str

    def tag(self, tags: Mapping[str, object]) -> None:
        """Set `tags` on the parent (values as text, cut to MLflow's limit with a visible marker)."""
        entries = [RunTag(key, _truncate(str(value), MAX_TAG_VAL_LENGTH)) for key, value in tags.items()]
        self.client.log_batch(self.run_id, tags=entries)

    def describe(self, markdown: str) -> None:
        """The run page's description: the pipeline's summary as the flow's artifact has it."""
        self.tag({NOTE_TAG: markdown})


@contextmanager
def pipeline_run(tracking: TrackingParams, root: str | Path, flow_run_id: str, run_name: str,
                 tags: Mapping[str, object] = {}) -> Iterator[PipelineRun]:
    """The parent run of flow run `flow_run_id`, running while the block runs and ended with its outcome
    (FINISHED, or FAILED when the block raises).

    A flow run that already has a parent (a retry, a resumed run) gets the same one back, running
    again, so its stages' runs gather under one parent; `tags` are set on a new parent only. A
    failure's first line, credentials masked, is kept as `pipeline.error`.
    """
    experiment = configure(tracking, root)
    client = MlflowClient(resolve_tracking_uri(tracking, root))
    # resolve_tags adds the user and the source file, as mlflow.start_run does: the page's "Created by".
    parent = PipelineRun(client, _reopen(client, experiment, flow_run_id)
                         or client.create_run(experiment, run_name=run_name,
                                              tags=resolve_tags({**_text(tags), FLOW_RUN_TAG: flow_run_id})).info.run_id)
    try:
        yield parent
    except BaseException as error:
        parent.tag({ERROR_TAG: redact_credentials(str(error).strip().partition("\n")[0] or type(error).__name__)})
        client.set_terminated(parent.run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(parent.run_id, RunStatus.to_string(RunStatus.FINISHED))


def _reopen(client: MlflowClient, experiment: str, flow_run_id: str) -> str | None:
    found = client.search_runs([experiment], f"tags.`{FLOW_RUN_TAG}` = {_quoted(flow_run_id)}", max_results=1)
    if not found:
        return None
    run_id = found[0].info.run_id
    if ERROR_TAG in found[0].data.tags:  # the last attempt's failure is not this one's
        client.delete_tag(run_id, ERROR_TAG)
    client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
    return run_id


def _text(tags: Mapping[str, object]) -> dict[str, str]:
    return {key: _truncate(str(value), MAX_TAG_VAL_LENGTH) for key, value in tags.items()}
