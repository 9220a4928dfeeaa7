"""The prepared data a run read, logged as an MLflow dataset input (the run page's "Datasets used").

The dataset is named by its folder; its digest is the start of the run's `data.hash` tag (the
folder's content, `provenance.folder_hash`; MLflow keeps 36 characters of a digest), and its profile
holds the whole hash with the DVC pin of the raw data (`data.dvc_md5`). Runs that read the same data
share one dataset in the experiment. The entity is built directly rather than through
`mlflow.data`: that is what `mlflow.log_input` sends, without the active run it requires.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
from mlflow.utils.validation import MAX_DATASET_DIGEST_SIZE

from metaembed.tracking.provenance import MISSING

TRAINING, EVALUATION = "training", "evaluation"  # the contexts the UI shows beside the dataset


def prepared_input(tags: Mapping[str, str], context: str) -> DatasetInput | None:
    """The folder of a stage run's tags (`stage_tags`: data.path, data.hash) as a dataset input read in
    `context`; None when the tags name no folder or it was missing."""
    path, digest = tags.get("data.path"), tags.get("data.hash")
    if not path or not digest or digest == MISSING:
        return None
    profile = {"data.hash": digest, "data.dvc_md5": tags.get("data.dvc_md5", MISSING)}
    dataset = Dataset(name=Path(path).name, digest=digest[:MAX_DATASET_DIGEST_SIZE], source_type="local",
                      source=json.dumps({"uri": path}), profile=json.dumps(profile))
    return DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])


def log_prepared_input(client: MlflowClient, run_id: str, tags: Mapping[str, str], context: str) -> bool:
    """Log the prepared folder of `tags` as an input of `run_id`; False when there is none to log.

    Logging it again is harmless: MLflow keeps one input per dataset and run (with the context it
    was first logged in), so a resumed training or an evaluation onto the training's run adds nothing.
    """
    found = prepared_input(tags, context)
    if found is None:
        return False
    try:
        client.log_inputs(run_id, datasets=[found])
    except MlflowException as error:
        # Runs that log the same new dataset at once race on its row in a team server's database:
        # the loser's insert hits the unique key. The dataset exists now, so a second try links it.
        if not _duplicate_key(error):
            raise
        client.log_inputs(run_id, datasets=[found])
    return True


def _duplicate_key(error: Exception) -> bool:
    text = str(error).lower()
    return any(words in text for words in ("duplicate key", "unique constraint", "duplicate entry"))
