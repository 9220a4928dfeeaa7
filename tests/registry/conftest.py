"""A project folder with what the train, sweep and index stages leave behind, on one shared MLflow store.

The store (an sqlite schema costs ~2 s to create) is shared by the session; every test gets its
own registered-model name, so registries never mix. budgets.json and the index stage's
latency.json are the real stages' output on a tiny model (measured once per session); a test
sets only the numbers the gate judges.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import yaml

from metaembed.stage_outputs import IndexLatency, SweepBudgets

REPO = Path(__file__).resolve().parents[2]
BUDGETS = [[1, 1], [4, 8]]
SERVED = (4, 8)  # the budget the gate serves when the cheaper 1x1 is more than max_quality_drop worse
SERVED_NAME = "4x8"
LATENCY_SIZES = [100, 1000]  # synthetic index sizes the sweep times (small: seconds)


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


def project_params(path: Path, sections: dict) -> Path:
    """The project's params.yaml with `sections` merged in (one level deeper for nested keys)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for name, values in sections.items():
        for key, value in values.items():
            current = params[name].get(key)
            params[name][key] = current | value if isinstance(current, dict) and isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture(scope="session")
def sweep_stage(tmp_path_factory, saved_models, prepared_dir) -> Path:
    """params.yaml of a folder where the real evaluate and sweep stages ran for saved_models[0] (no MLflow)."""
    from metaembed.config import load_root
    from metaembed.evaluation.stage import run_evaluate
    from metaembed.evaluation.sweep import run_sweep

    root = tmp_path_factory.mktemp("sweep-stage")
    path = project_params(root / "params.yaml", {
        "prepare": {"out_dir": str(prepared_dir)},
        "train": {"output_dir": str(saved_models[0])},
        "evaluate": {"out_dir": str(root / "evaluate"), "budgets": BUDGETS, "batch_size": 16, "num_threads": 1,
                     "log_to_mlflow": False},
        "sweep": {"out_dir": str(root / "sweep"), "budgets": BUDGETS, "encode_sample": 2, "log_to_mlflow": False,
                  "latency": {"candidates": LATENCY_SIZES, "repeats": 1, "warmup": 0, "quiet_wait_s": 0,
                              "flush_mib": 0}},
        "index": {"out_dir": str(root / "index"), "latency": {"queries": 4, "repeats": 1}},
    })
    params = load_root(path)
    run_evaluate(params, progress=False)
    run_sweep(params, progress=False)
    return path


@pytest.fixture(scope="session", name="budget_table")
def budget_table_fixture(sweep_stage):
    """budgets.json as the real evaluate and sweep stages write it for saved_models[0]."""
    from metaembed.config import load_root

    return SweepBudgets.read(load_root(sweep_stage).budgets_path)


@pytest.fixture(scope="session", name="index_stage")
def index_stage_fixture(sweep_stage) -> tuple[IndexLatency, Path]:
    """latency.json and the index folder as the real index stage writes them after that sweep."""
    from metaembed.config import load_root
    from metaembed.serving.stage import run_index_stage

    params = load_root(sweep_stage)
    return run_index_stage(params, progress=False), params.index_dir


def as_measured(table, run_id: str | None, quality: float, index_bytes: int | None = None,
                latency_ms: float | None = None, cheap_quality: float | None = None):
    """The sweep's table for training run `run_id`, with the gate's numbers set: `quality` (of the
    table's metric), bfloat16 `index_bytes` and `latency_ms` at every size at SERVED, and
    `cheap_quality` (default: half of `quality`) at every other budget.

    model_copy does not validate: a test may write a value the reader must refuse.
    """
    rows = []
    for row in table.budgets:
        if row.budget == SERVED:
            update = {"quality": row.quality | {table.quality_metric: quality}}
            if index_bytes is not None:
                update["index_bytes_per_candidate"] = row.index_bytes_per_candidate | {"bfloat16": index_bytes}
            if latency_ms is not None:
                update["latency_ms_per_query"] = {size: latency_ms for size in row.latency_ms_per_query}
        else:
            cheap = quality / 2 if cheap_quality is None else cheap_quality
            update = {"quality": row.quality | {table.quality_metric: cheap}}
        rows.append(row.model_copy(update=update))
    return table.model_copy(update={"mlflow_run_id": run_id, "budgets": rows})


@dataclass
class Project:
    root: Path
    params_path: Path
    model_name: str
    tracking_uri: str
    saved_models: list[Path]
    sweep: SweepBudgets  # the real sweep's table (of saved_models[0])
    index_stage: tuple[IndexLatency, Path]  # the real index stage's latency.json and index folder
    train_run_id: str | None = None  # the last `train`'s run

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def train(self, model: int, quality: float, index_ms: float | None = None, **table) -> str:
        """Leave what a finished train + sweep leave: the model folder, metrics.json, budgets.json;
        with `index_ms`, what the index stage leaves too (its served ms/query at SERVED).

        Returns the new training run's id (a finished MLflow run with provenance tags).
        """
        from metaembed.config import load_section
        from metaembed.stage_outputs import TrainReport
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
        self.train_run_id = run.info.run_id
        TrainReport(mlflow_run_id=self.train_run_id, metrics={"val/p_at_1_full": quality}).write(
            self.root / "artifacts" / "train" / "metrics.json")
        self.write_budgets(quality, **table)
        shutil.rmtree(self.root / "artifacts" / "index", ignore_errors=True)
        if index_ms is not None:
            self.write_index(index_ms)
        return self.train_run_id

    def write_budgets(self, quality: float, run_id: str | None = None, **table) -> Path:
        """budgets.json as the sweep after the last `train` writes it (or after run `run_id`)."""
        measured = as_measured(self.sweep, run_id or self.train_run_id, quality, **table)
        return measured.write(self.root / "artifacts" / "sweep" / "budgets.json")

    def write_index(self, served_ms: float, **update) -> IndexLatency:
        """The index folder and latency.json as the index stage leaves them for the trained model,
        with two-stage ms/query `served_ms` at SERVED (and `update` on the whole file)."""
        from metaembed.registry.digest import folder_sha256

        latency, folder = self.index_stage
        target = self.root / "artifacts" / "index"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(folder, target / "index")
        rows = [row.model_copy(update={"two_stage_ms": served_ms}) if row.name == SERVED_NAME else row
                for row in latency.budgets]
        measured = latency.model_copy(update={"model_sha256": folder_sha256(self.root / "artifacts" / "model"),
                                              "budgets": rows, **update})
        measured.write(target / "latency.json")
        return measured

    def aliases(self) -> dict[str, str]:
        aliases = self.client().get_registered_model(self.model_name).aliases
        return {alias: str(version) for alias, version in aliases.items()}

    def versions(self) -> list[str]:
        found = self.client().search_model_versions(f"name = '{self.model_name}'")
        return [str(number) for number in sorted(int(v.version) for v in found)]


@pytest.fixture
def project(tmp_path, store_dir, saved_models, budget_table, index_stage, monkeypatch) -> Project:
    yield from _project(tmp_path, f"sqlite:///{store_dir}/mlflow.db", str(store_dir / "mlartifacts"), saved_models,
                        budget_table, index_stage, monkeypatch)


@pytest.fixture
def server_project(tmp_path, services, saved_models, budget_table, index_stage, monkeypatch) -> Project:
    """The same project on the team MLflow server of `metaembed services` (PostgreSQL behind it)."""
    yield from _project(tmp_path, services.tracking_uri, "mlartifacts", saved_models, budget_table, index_stage,
                        monkeypatch)


def _project(tmp_path, uri, artifacts, saved_models, budget_table, index_stage, monkeypatch):
    # A developer's MLFLOW_TRACKING_URI must not receive test models; the repo's mlflow.db neither.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    name = f"metaembed-{uuid.uuid4().hex[:8]}"
    path = project_params(tmp_path / "params.yaml", {
        "tracking": {"tracking_uri": uri, "artifact_location": artifacts,
                     "experiment": "metaembed-registry-tests", "system_metrics": False},
        "train": {"output_dir": "artifacts/model", "report_dir": "artifacts/train"},
        "registry": {"model_name": name},
        "promotion": {"served_budget": None, "quality_metric": "mmeb_p_at_1", "min_quality": 0.2,
                      "max_quality_drop": 0.02, "max_index_bytes_per_candidate": 4096, "max_latency_ms": None,
                      "min_gain": 0.01},
        "index": {"out_dir": "artifacts/index", "dtype": "bfloat16"},
    })
    yield Project(tmp_path, path, name, uri, saved_models, budget_table, index_stage)
    mlflow.set_tracking_uri(None)  # configure() sets it process-wide
    mlflow.set_registry_uri(None)
