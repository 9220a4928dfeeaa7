"""A project folder with what the train and sweep stages leave behind, on one shared MLflow store.

The store (an sqlite schema costs ~2 s to create) is shared by the session; every test gets its
own registered-model name, so registries never mix.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import yaml

BUDGETS = ((1, 1), (4, 8))
DIM = 128  # the tiny backbone's hidden size


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory, backbone_params) -> list[Path]:
    """Two different tiny MetaEmbeds (meta tokens drawn from seeds 0 and 1), saved as the train stage does."""
    import torch

    from metaembed.backbones import load_backbone
    from metaembed.model import MetaEmbed, ModelParams

    root = tmp_path_factory.mktemp("saved-models")
    folders = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        params = ModelParams(num_query_meta=4, num_candidate_meta=8)
        model = MetaEmbed(load_backbone(backbone_params), params, backbone_params)
        folders.append(model.save_pretrained(root / f"model-{seed}"))
    return folders


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mlflow-store")


@pytest.fixture(name="budget_table")
def budget_table_fixture():
    return budget_table


def budget_table(quality: float, index_bytes: int = 2048, latency_ms: float = 5.0, run_id: str = "sweep-run") -> dict:
    """budgets.json as the sweep stage writes it; `quality` is the metric at the largest budget."""
    rows = []
    for r_q, r_c in BUDGETS:
        scale = r_c / BUDGETS[-1][1]
        rows.append({
            "name": f"{r_q}x{r_c}", "r_q": r_q, "r_c": r_c,
            "quality": {"mmeb_p_at_1": round(quality * (0.5 + 0.5 * scale), 4), "vidore_ndcg_at_5": 0.3},
            "index_bytes_per_candidate": {"float32": 2 * int(index_bytes * scale), "bfloat16": int(index_bytes * scale)},
            "flops_per_pair": r_q * r_c * (2 * DIM - 1),
            "latency_ms_per_query": {"10000": latency_ms * scale / 10, "100000": latency_ms * scale},
            "encode_per_second": {"query": 100.0, "candidate": 50.0},
            "pareto": True,
        })
    return {"mlflow_run_id": run_id, "quality_metric": "mmeb_p_at_1", "budgets": rows}


@dataclass
class Project:
    root: Path
    params_path: Path
    model_name: str
    tracking_uri: str
    saved_models: list[Path]

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def train(self, model: int, quality: float, **table) -> str:
        """Leave what a finished train + sweep leave: the model folder, metrics.json, budgets.json.

        Returns the new training run's id (a finished MLflow run with provenance tags).
        """
        from metaembed.config import load_section
        from metaembed.tracking import TrackingParams, configure

        experiment = configure(load_section("tracking", TrackingParams, self.params_path), self.root)
        client = self.client()
        run = client.create_run(experiment, run_name="train",
                                tags={"git.commit": "c0ffee", "params.hash": "p" * 8, "data.hash": "d" * 8})
        client.log_metric(run.info.run_id, "val/p_at_1_full", quality)
        client.set_terminated(run.info.run_id)
        target = self.root / "artifacts" / "model"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.saved_models[model], target)
        (self.root / "artifacts" / "train").mkdir(parents=True, exist_ok=True)
        (self.root / "artifacts" / "train" / "metrics.json").write_text(
            json.dumps({"mlflow_run_id": run.info.run_id, "metrics": {"val/p_at_1_full": quality}}))
        self.write_budgets(quality, **table)
        return run.info.run_id

    def write_budgets(self, quality: float, **table) -> None:
        (self.root / "artifacts" / "sweep").mkdir(parents=True, exist_ok=True)
        (self.root / "artifacts" / "sweep" / "budgets.json").write_text(json.dumps(budget_table(quality, **table)))

    def aliases(self) -> dict[str, str]:
        aliases = self.client().get_registered_model(self.model_name).aliases
        return {alias: str(version) for alias, version in aliases.items()}

    def versions(self) -> list[str]:
        found = self.client().search_model_versions(f"name = '{self.model_name}'")
        return [str(number) for number in sorted(int(v.version) for v in found)]


@pytest.fixture
def project(tmp_path, store_dir, saved_models, monkeypatch) -> Project:
    # A developer's MLFLOW_TRACKING_URI must not receive test models; the repo's mlflow.db neither.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    name = f"metaembed-{uuid.uuid4().hex[:8]}"
    uri = f"sqlite:///{store_dir}/mlflow.db"
    params = {
        "tracking": {"tracking_uri": uri, "artifact_location": str(store_dir / "mlartifacts"),
                     "experiment": "metaembed-registry-tests", "system_metrics": False},
        "train": {"output_dir": "artifacts/model", "report_dir": "artifacts/train"},
        "registry": {"model_name": name},
        "promotion": {"budget": [4, 8], "quality_metric": "mmeb_p_at_1", "min_quality": 0.2,
                      "max_index_bytes_per_candidate": 4096, "index_dtype": "bfloat16", "min_gain": 0.01},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    yield Project(tmp_path, path, name, uri, saved_models)
    mlflow.set_tracking_uri(None)  # configure() sets it process-wide
    mlflow.set_registry_uri(None)
