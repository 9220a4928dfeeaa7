"""A saved tiny model, a small plain corpus, an index built from it, and (for the tests that need
the registry) the model registered in a temporary MLflow store with a quality/cost table.

Loading the tiny model costs a second or two, so the model, the index and its searcher are built
once per session and shared; a test that changes a model or an index copies it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
TEXTS = {
    "doc0.txt": "a red circle on a white page",
    "doc1.txt": "the quarterly revenue table for 2023",
    "notes/doc2.txt": "a blue square",
    "notes/doc3.txt": "how to bake sourdough bread",
}
IMAGES = {"red.png": (220, 40, 40), "pages/blue.jpg": (40, 70, 220)}


def write_plain_corpus(folder: Path) -> Path:
    """Four texts and two images in nested folders, a hidden file and a file of another type."""
    for name, text in TEXTS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    for name, colour in IMAGES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (48, 40), colour).save(folder / name)
    (folder / ".DS_Store").write_bytes(b"\0\1")
    (folder / "notes.pdf").write_bytes(b"%PDF-1.4")
    return folder


@pytest.fixture(scope="session")
def pinned(saved_model):
    from metaembed.registry.load import load_pinned

    return load_pinned(saved_model)


@pytest.fixture(scope="session")
def plain_corpus(tmp_path_factory) -> Path:
    return write_plain_corpus(tmp_path_factory.mktemp("plain") / "corpus")


@pytest.fixture(scope="session")
def plain_texts() -> dict[str, str]:
    """Id (path in the plain corpus) -> text of its text candidates."""
    return dict(TEXTS)


@pytest.fixture
def make_plain_corpus(tmp_path):
    """Factory: a fresh copy of the plain corpus under tmp_path (to add broken files to)."""
    return lambda name="corpus": write_plain_corpus(tmp_path / name)


@pytest.fixture(scope="session")
def plain_index(tmp_path_factory, pinned, plain_corpus) -> Path:
    """The plain corpus, float32 (exact scores) with a flat first stage."""
    from metaembed.serving.build import build_index
    from metaembed.serving.corpus import read_corpus

    out = tmp_path_factory.mktemp("plain-index") / "index"
    build_index(pinned, read_corpus(plain_corpus), out, dtype="float32", first_stage="flat", progress=False)
    return out


@pytest.fixture(scope="session")
def searcher(plain_index):
    from metaembed.serving.searcher import Searcher

    return Searcher.open(plain_index)


@dataclass
class Registered:
    params_path: Path
    name: str
    version: str
    table: object  # SweepBudgets stored on the version


@pytest.fixture(scope="module")
def registered(tmp_path_factory, saved_model) -> Registered:
    """saved_model registered as `registration` does, alias champion, with a two-row budget table."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from metaembed.registry.params import RegistryParams
    from metaembed.registry.register import Inputs, register_model
    from metaembed.stage_outputs import SweepBudgets
    from metaembed.tracking import TrackingParams, configure

    root = tmp_path_factory.mktemp("registry")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["tracking"].update(tracking_uri=f"sqlite:///{root}/mlflow.db", artifact_location=str(root / "mlartifacts"),
                              experiment="serving-tests", system_metrics=False)
    params_path = root / "params.yaml"
    params_path.write_text(yaml.safe_dump(params))
    tracking = TrackingParams.model_validate(params["tracking"])
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        experiment = configure(tracking, root)
        client = MlflowClient(tracking_uri=tracking.tracking_uri, registry_uri=tracking.tracking_uri)
        run_id = client.create_run(experiment, run_name="train").info.run_id
        client.set_terminated(run_id)
        table = SweepBudgets(mlflow_run_id=run_id, quality_metric="mmeb_p_at_1", budgets=[
            _row(1, 1, 0.31, 2 * 128), _row(4, 8, 0.52, 8 * 2 * 128), _row(16, 64, 0.6, 64 * 2 * 128)])
        name = "serving-tests"
        registration = register_model(client, Inputs(RegistryParams(model_name=name), tracking, saved_model,
                                                     run_id, table))
        client.set_registered_model_alias(name, "champion", registration.version)
        yield Registered(params_path, name, registration.version, table)
    # configure() and the loader set them process-wide: leave them as other modules expect them.
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def _row(r_q: int, r_c: int, quality: float, index_bytes: int):
    from metaembed.stage_outputs import BudgetRow

    return BudgetRow(name=f"{r_q}x{r_c}", r_q=r_q, r_c=r_c, quality={"mmeb_p_at_1": quality},
                     index_bytes_per_candidate={"bfloat16": index_bytes}, flops_per_pair=2 * r_q * r_c * 128,
                     latency_ms_per_query={"1000": 0.5 * r_c}, encode_per_second={"query": 10.0, "candidate": 5.0})
