"""Shared fixtures: one small generated benchmark per session, and the real ViDoRe sample."""

from __future__ import annotations

from pathlib import Path

import pytest

from metaembed.data.params import DataParams
from metaembed.data.synth import generate

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / ".." / "shared"


def small_params(**overrides) -> DataParams:
    base = {"train": {"rows_per_subset": 12}, "eval": {"queries_per_subset": 6, "candidates": 24},
            "pages": {"train_docs": 4, "eval_docs": 4}}
    base.update(overrides)
    return DataParams.model_validate(base)


@pytest.fixture(scope="session")
def make_params():
    """Small DataParams (a few rows per subset) with optional top-level overrides."""
    return small_params


@pytest.fixture(scope="session")
def raw_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "raw"
    generate(small_params(), out, progress=False)
    return out


@pytest.fixture(scope="session")
def vidore_sample() -> Path:
    folder = SHARED / "fixtures" / "vidore" / "v1_beir_arxivqa_mini"
    if not SHARED.is_dir():
        pytest.skip(f"../shared is absent ({SHARED.resolve()}): the real ViDoRe sample cannot be read")
    assert folder.is_dir(), f"../shared exists but {folder} does not"
    return folder
