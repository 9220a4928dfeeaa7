"""A small prepared benchmark, a saved untrained tiny model, and a params file that points at them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from metaembed.config import apply_overrides

REPO = Path(__file__).resolve().parents[2]

REPO = Path(__file__).resolve().parents[2]
VIDORE_SAMPLE = REPO.parent / "shared" / "fixtures" / "vidore" / "v1_beir_arxivqa_mini"


@pytest.fixture(scope="session")
def eval_prepared(tmp_path_factory) -> Path:
    from metaembed.data.params import PrepareParams
    from metaembed.data.prepare import run_prepare
    from metaembed.synth.generate import generate
    from metaembed.synth.params import DataParams

    root = tmp_path_factory.mktemp("eval-data")
    data = DataParams.model_validate({"train": {"rows_per_subset": 8},
                                      "eval": {"queries_per_subset": 3, "candidates": 10},
                                      "pages": {"train_docs": 2, "eval_docs": 3}})
    generate(data, root / "raw", progress=False)
    run_prepare(root / "raw", PrepareParams(out_dir=str(root / "prepared")), progress=False)
    return root / "prepared"


class VectorModel:
    """Stands in for MetaEmbed: `vector(side, text, image, r, dim)` gives each input's [r, D] vectors."""

    def __init__(self, vector, sizes=(4, 8), dim=8, pooling="meta"):
        from types import SimpleNamespace

        self.vector, self.sizes, self.dim = vector, sizes, dim
        self.params = SimpleNamespace(pooling=pooling)
        self.encoded = 0

    def num_vectors(self, side):
        return self.sizes[0] if side == "query" else self.sizes[1]

    def encode(self, side, texts, images, budget=None):
        import torch

        self.encoded += len(texts)
        rows = [self.vector(side, t, i, self.num_vectors(side), self.dim) for t, i in zip(texts, images)]
        vectors = torch.nn.functional.normalize(torch.stack(rows), dim=-1)
        return vectors, torch.ones(vectors.shape[:2], dtype=torch.bool)


def constant_vectors(side, text, image, r, dim):
    import torch

    return torch.ones(r, dim)


def hashed_vectors(side, text, image, r, dim):
    """Deterministic random vectors per input content (same for a page in two layouts)."""
    import hashlib

    import torch

    if image is None:
        content = b""
    else:
        content = image if isinstance(image, bytes) else Path(image).read_bytes()
    seed = int(hashlib.sha1(text.encode() + b"|" + content).hexdigest()[:8], 16)
    return torch.randn(r, dim, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def fake_model():
    """Factory: fake_model("constant" | "hashed", **VectorModel kwargs)."""
    kinds = {"constant": constant_vectors, "hashed": hashed_vectors}
    return lambda kind, **kwargs: VectorModel(kinds[kind], **kwargs)


@pytest.fixture(scope="session")
def vidore_sample() -> Path:
    if not VIDORE_SAMPLE.is_dir():
        pytest.skip(f"{VIDORE_SAMPLE} is absent: the real ViDoRe sample cannot be read")
    return VIDORE_SAMPLE


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory):
    """One SQLite tracking store for the session: creating its tables takes seconds."""
    from metaembed.tracking import TrackingParams

    root = tmp_path_factory.mktemp("mlflow")
    return TrackingParams(tracking_uri=f"sqlite:///{root}/mlflow.db", artifact_location=str(root / "mlartifacts"),
                          system_metrics=False), root


@pytest.fixture
def mlflow_run(tmp_path, mlflow_store):
    """A finished MLflow run (as a training leaves it) and the train report that names it."""
    from mlflow.tracking import MlflowClient

    from metaembed.tracking import configure

    tracking, root = mlflow_store
    experiment = configure(tracking, root)
    client = MlflowClient(tracking.tracking_uri)
    run_id = client.create_run(experiment, run_name="train").info.run_id
    client.set_terminated(run_id)
    report = tmp_path / "train" / "metrics.json"
    report.parent.mkdir(parents=True)
    report.write_text(f'{{"mlflow_run_id": "{run_id}", "metrics": {{}}}}')
    return {"run_id": run_id, "report": report, "tracking": tracking, "client": client}


@pytest.fixture
def eval_params(tmp_path, eval_prepared, saved_model, mlflow_store, request):
    """Write params.yaml for evaluate and sweep on the small data; overrides are {"section.key": value}.

    With mlflow=True results are logged onto the `mlflow_run` fixture's run (creating the store
    costs seconds, so only tests that check MLflow pay for it).
    """

    def write(overrides: dict | None = None, mlflow: bool = False) -> Path:
        report = request.getfixturevalue("mlflow_run")["report"] if mlflow else tmp_path / "train" / "metrics.json"
        fields = {
            "prepare": {"out_dir": str(eval_prepared)},
            "tracking": mlflow_store[0].model_dump(),
            "train": {"output_dir": str(saved_model), "report_dir": str(report.parent)},
            "evaluate": {"out_dir": str(tmp_path / "evaluate"), "budgets": [[1, 1], [2, 4], [4, 8]],
                         "batch_size": 16, "num_threads": 1, "log_to_mlflow": mlflow},
            "sweep": {"out_dir": str(tmp_path / "sweep"), "budgets": [[1, 1], [2, 4], [4, 8]],
                      "log_to_mlflow": mlflow,
                      "latency": {"candidates": [100, 1000], "repeats": 2, "warmup": 1, "quiet_wait_s": 0,
                                  "flush_mib": 1},
                      "encode_sample": 4},
        }
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        for name, values in fields.items():
            params[name].update(values)
        params = apply_overrides(params, overrides or {})
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(params))
        return path

    return write
