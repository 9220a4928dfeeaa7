"""The faiss first stage: removed rows are never shortlisted, and the HNSW beam widens to k."""

from __future__ import annotations

import numpy as np
import pytest

from metaembed.index import first_stage
from metaembed.index.first_stage import FirstStageSettings
from metaembed.index.synthetic import unit_vectors

N, D = 500, 16


@pytest.fixture(params=["hnsw", "flat"])
def built(request):
    settings = FirstStageSettings(request.param, hnsw_m=8, ef_search=4)
    index = first_stage.build(settings, D)
    first_stage.add(index, unit_vectors(N, D, seed=0).numpy())
    return index, settings


def test_removed_rows_are_never_shortlisted(built) -> None:
    index, settings = built
    queries = unit_vectors(5, D, seed=1).numpy()
    live = np.ones(N, dtype=bool)
    live[::2] = False  # every even row removed
    rows = first_stage.search(index, settings, queries, 50, live)
    assert rows.shape == (5, 50) and bool((rows >= 0).all())
    assert bool((rows % 2 == 1).all())


def test_a_beam_narrower_than_k_is_widened_so_k_rows_come_back(built) -> None:
    index, settings = built
    rows = first_stage.search(index, settings, unit_vectors(3, D, seed=2).numpy(), 100, None, ef_search=4)
    assert bool((rows >= 0).all()) and all(len(set(row.tolist())) == 100 for row in rows)


def test_exact_flat_shortlist_is_the_true_inner_product_top_k() -> None:
    settings = FirstStageSettings("flat")
    index = first_stage.build(settings, D)
    vectors = unit_vectors(N, D, seed=3).numpy()
    first_stage.add(index, vectors)
    query = unit_vectors(1, D, seed=4).numpy()
    rows = first_stage.search(index, settings, query, 10, None)
    assert rows[0].tolist() == np.argsort(-(vectors @ query[0]), kind="stable")[:10].tolist()


def test_settings_round_trip_through_the_manifest_and_refuse_nonsense() -> None:
    settings = FirstStageSettings("hnsw", hnsw_m=12, ef_construction=50, ef_search=30)
    assert FirstStageSettings.from_json(settings.to_json()) == settings
    assert FirstStageSettings("flat").to_json() == {"kind": "flat", "vectors": 1, "pool": "first"}
    # Manifests written before `vectors` existed hold one vector per candidate.
    assert FirstStageSettings.from_json({"kind": "flat"}) == FirstStageSettings("flat", vectors=1)
    with pytest.raises(ValueError, match="vectors must be an int >= 1, got 0"):
        FirstStageSettings("flat", vectors=0)
    with pytest.raises(ValueError, match="ef_search must be an int >= 1, got 0"):
        FirstStageSettings("hnsw", ef_search=0)
