"""An index built from a registered version: pinned to the version the alias named, linked to it by
a tag, and served with the version's quality/cost table."""

from __future__ import annotations

import hashlib

import pytest
import yaml
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from metaembed.cli import main
from metaembed.index import MultiVectorIndex
from metaembed.registry.indexes import index_tag_key, linked_indexes
from metaembed.registry.names import SHA_TAG
from metaembed.serving.app import create_app


@pytest.fixture(scope="module")
def registry_index(registered, plain_corpus, tmp_path_factory, monkeypatch_module):
    out = tmp_path_factory.mktemp("registry-index") / "index"
    code = main(["index", "build", "--model", f"models:/{registered.name}@champion", "--corpus", str(plain_corpus),
                 "--out", str(out), "--params", str(registered.params_path), "--first-stage", "none",
                 "--no-progress"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the test store, not a developer's
        yield patch


def _client(registered) -> MlflowClient:
    uri = yaml.safe_load(registered.params_path.read_text())["tracking"]["tracking_uri"]
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_the_index_pins_the_version_the_alias_named_and_tags_it(registered, registry_index):
    client = _client(registered)
    version = client.get_model_version(registered.name, registered.version)
    meta = MultiVectorIndex.load(registry_index).meta

    assert meta["model_uri"] == f"models:/{registered.name}@champion"
    assert (meta["model_name"], meta["model_version"]) == (registered.name, registered.version)
    assert meta["model_sha256"] == version.tags[SHA_TAG]  # the registry's own fingerprint of the files
    assert meta["model_store"].startswith("sqlite:///")
    links = linked_indexes(client, registered.name, registered.version)
    record = links[index_tag_key(registry_index)]
    manifest = registry_index / "manifest.json"
    assert record["path"] == str(registry_index.resolve())
    assert record["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert (record["candidates"], record["dtype"]) == ("6", "bfloat16")


def test_the_service_shows_the_versions_budgets_and_searches(registered, registry_index):
    client = TestClient(create_app(registry_index, registered.params_path))

    health = client.get("/health").json()
    assert health["model"] == f"models:/{registered.name}/{registered.version}"
    body = client.get("/budgets").json()
    assert body["model"] == health["model"] and body["quality_metric"] == "mmeb_p_at_1"
    rows = {row["name"]: row for row in body["budgets"]}
    assert {name: row["quality"]["mmeb_p_at_1"] for name, row in rows.items()} == \
        {row.name: row.quality["mmeb_p_at_1"] for row in registered.table.budgets}
    assert rows["4x8"]["index_bytes_per_candidate"] == {"bfloat16": 2048}
    # 16x64 needs more vectors than this model and index hold.
    assert {name: row["servable"] for name, row in rows.items()} == {"1x1": True, "4x8": True, "16x64": False}
    response = client.post("/search", json={"text": "a blue square", "budget": [1, 1], "k": 2})
    assert response.status_code == 200 and len(response.json()["results"]) == 2
