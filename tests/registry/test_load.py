from __future__ import annotations

import base64
import io

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
