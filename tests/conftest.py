"""Shared fixtures: offline settings and one tiny backbone per test session."""

from __future__ import annotations

import os

# The suite never touches a network: set before transformers/mlflow/prefect are imported.
for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_key, _value)

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def backbone_params(tmp_path_factory):
    from metaembed.backbones import BackboneParams

    return BackboneParams(cache_dir=str(tmp_path_factory.mktemp("backbones")))


@pytest.fixture
def tiny_backbone(backbone_params):
    from metaembed.backbones import load_backbone

    return load_backbone(backbone_params)


@pytest.fixture
def make_model(backbone_params):
    """Factory: a MetaEmbed on a fresh tiny backbone with the given ModelParams overrides."""
    import torch

    from metaembed.backbones import load_backbone
    from metaembed.model import MetaEmbed, ModelParams

    def make(**overrides):
        torch.manual_seed(0)
        return MetaEmbed(load_backbone(backbone_params), ModelParams(**overrides), backbone_params)

    return make


@pytest.fixture
def images():
    """Three distinct small RGB images (one non-square)."""
    rng = np.random.default_rng(0)
    sizes = [(112, 112), (96, 128), (112, 112)]
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in sizes]
