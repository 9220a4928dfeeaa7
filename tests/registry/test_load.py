from __future__ import annotations

import base64
import io
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

import metaembed
from metaembed.config import load_section
from metaembed.model import MetaEmbed
from metaembed.registry.gate import promote
from metaembed.registry.params import PromotionParams
from metaembed.registry.register import register
from metaembed.registry.store import RegistryError

TEXTS = ["a red circle", "which shape is this?"]


def data_uri(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture
def champion(project):
    project.train(0, quality=0.5)
    register(project.params_path, project.root)
    promote(project.client(), project.model_name, load_section("promotion", PromotionParams, project.params_path))
    return f"models:/{project.model_name}@champion"


def test_metaembed_load_gives_the_trained_model_ready_to_encode(project, champion):
    model = metaembed.load(champion, params_path=project.params_path)
    reference = MetaEmbed.from_pretrained(project.saved_models[0])

    assert isinstance(model, MetaEmbed) and not model.training
    with torch.inference_mode():
        ours, _ = model.encode_queries(TEXTS, budget=2)
        theirs, _ = reference.encode_queries(TEXTS, budget=2)
    assert ours.shape == (2, 2, 128)
    torch.testing.assert_close(ours, theirs)


def test_the_pyfunc_embeds_text_and_images_at_a_budget_per_side(project, champion, images):
    pyfunc = mlflow.pyfunc.load_model(champion)
    frame = pd.DataFrame({"text": ["a red circle", None], "image": [None, data_uri(images[0])]})
    output = pyfunc.predict(frame, params={"side": "candidate", "budget": 4})

    reference = MetaEmbed.from_pretrained(project.saved_models[0])
    with torch.inference_mode():
        expected, _ = reference.encode_candidates(["a red circle", None], [None, images[0]], budget=4)
    assert output.shape == (2, 4, 128) and output.dtype == np.float32
    np.testing.assert_allclose(output, expected.numpy(), atol=1e-5)
    full = pyfunc.predict(pd.DataFrame({"text": TEXTS}))  # defaults: query side, every vector
    assert full.shape == (2, 4, 128)


def test_bad_pyfunc_input_is_named(champion):
    pyfunc = mlflow.pyfunc.load_model(champion)
    with pytest.raises(Exception, match="only base64 data URIs"):
        pyfunc.predict(pd.DataFrame({"image": ["data:image/png,notbase64"]}))


def test_load_accepts_a_saved_folder_and_names_a_wrong_one(saved_models, tmp_path):
    assert isinstance(metaembed.load(saved_models[0]), MetaEmbed)
    with pytest.raises(FileNotFoundError, match="neither a MetaEmbed.save_pretrained folder"):
        metaembed.load(tmp_path)


def _stored_python_model(project) -> Path:
    """The pyfunc file stored with version 1, in the store's own artifact folder."""
    from urllib.parse import urlsplit

    source = project.client().get_model_version_download_uri(project.model_name, "1")
    folder = Path(urlsplit(source).path) if source.startswith("file:") else Path(source)
    (stored,) = folder.rglob("pyfunc_model.py")
    return stored


def test_load_reads_weights_without_running_code_stored_with_the_version(project, champion, tmp_path):
    marker = tmp_path / "stored-code-ran"
    stored = _stored_python_model(project)
    # Whoever can write to the store could change this file; loading must not execute it.
    stored.write_text(stored.read_text() + f"\nfrom pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n")
    model = metaembed.load(champion, params_path=project.params_path)
    assert isinstance(model, MetaEmbed) and not marker.exists()
    reference = MetaEmbed.from_pretrained(project.saved_models[0])
    with torch.inference_mode():
        torch.testing.assert_close(model.encode_queries(TEXTS)[0], reference.encode_queries(TEXTS)[0])


def test_load_outside_a_project_creates_no_store_and_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(None)
    with pytest.raises(RegistryError, match=r"sqlite:///.*mlflow\.db") as error:
        metaembed.load("models:/metaembed@champion")
    assert "mlflow's default, as params.yaml does not exist" in str(error.value)  # where the URI came from
    assert list(tmp_path.iterdir()) == []  # no empty mlflow.db, no mlruns/


def test_a_missing_model_names_the_store_without_its_password(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:s3cret@127.0.0.1:9")  # nothing listens on 9
    try:
        with pytest.raises(RegistryError, match=r"http://alice:\*\*\*@127\.0\.0\.1:9") as error:
            metaembed.load("models:/metaembed@champion")
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    assert "s3cret" not in str(error.value)


def test_a_missing_version_in_an_existing_store_names_the_store(project):
    project.train(0, quality=0.5)
    register(project.params_path, project.root)
    with pytest.raises(RegistryError, match=rf"models:/{project.model_name}/7.*{project.tracking_uri}"):
        metaembed.load(f"models:/{project.model_name}/7", params_path=project.params_path)
