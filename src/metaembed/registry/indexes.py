"""What the registry knows about indexes built with a model version: the link tag that
`metaembed index build` writes, and the version's quality/cost table that `metaembed serve` shows.

Both go through a client on the store the model was loaded from (`load._use_project_store` has
pointed mlflow at it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mlflow.tracking import MlflowClient

from metaembed.registry.names import BUDGETS_TAG, INDEX_TAG_PREFIX
from metaembed.registry.store import RegistryError, reaching
from metaembed.stage_outputs import StageOutputError, SweepBudgets


class NoBudgetTable(RegistryError):
    """The version exists but carries no (valid) quality/cost table."""


def client_for(store: str) -> MlflowClient:
    return MlflowClient(tracking_uri=store, registry_uri=store)


def index_tag_key(folder: str | Path) -> str:
    """One tag per index folder: a digest of its absolute path, so two indexes never share a key."""
    digest = hashlib.sha256(str(Path(folder).resolve()).encode()).hexdigest()[:16]
    return INDEX_TAG_PREFIX + digest


def link_index(client: MlflowClient, name: str, version: str, folder: str | Path, record: dict[str, str]) -> str:
    """Tag version `version` of `name` with the index at `folder` (`record`: its manifest sha256,
    size...); returns the tag key. Re-building the same folder replaces its tag."""
    key = index_tag_key(folder)
    value = json.dumps({"path": str(Path(folder).resolve()), **record}, sort_keys=True)
    with reaching(client.tracking_uri, f"tagging models:/{name}/{version} with the index at {folder}",
                  "the index is saved but not linked to the version; run the build again to link it"):
        client.set_model_version_tag(name, version, key, value)
    return key


def linked_indexes(client: MlflowClient, name: str, version: str) -> dict[str, dict]:
    """Tag key -> record of every index linked to the version."""
    with reaching(client.tracking_uri, f"reading models:/{name}/{version}"):
        tags = client.get_model_version(name, version).tags
    return {key: json.loads(value) for key, value in tags.items() if key.startswith(INDEX_TAG_PREFIX)}


def version_budgets(client: MlflowClient, name: str, version: str) -> SweepBudgets:
    """The sweep's quality/cost table that registration stored on the version.

    NoBudgetTable when the version has no (valid) table; RegistryError when it cannot be read.
    """
    with reaching(client.tracking_uri, f"reading models:/{name}/{version}"):
        tags = client.get_model_version(name, version).tags
    text = tags.get(BUDGETS_TAG)
    if text is None:
        raise NoBudgetTable(f"models:/{name}/{version} has no {BUDGETS_TAG} tag: it was not registered by "
                            "`metaembed register` after a sweep, so no quality/cost table is known")
    try:
        return SweepBudgets.parse(text, f"models:/{name}/{version} tag {BUDGETS_TAG}")
    except StageOutputError as error:
        raise NoBudgetTable(str(error)) from None
