"""Register the trained model as a version of a named MLflow model, once per distinct model.

The model is logged into the training run as a pyfunc "from code" (pyfunc_model.py) with the
saved folder as its artifact, then registered. A version is "the same model" when its
`metaembed.model_sha256` tag equals the sha256 of the saved folder, so re-running the pipeline
with nothing changed registers nothing; timestamps play no part. The pipeline's current model
always carries the `challenger` alias.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from mlflow.tracking import MlflowClient

from metaembed.config import load_root
from metaembed.model import CONFIG_FILE
from metaembed.registry.names import (ARTIFACT_KEY, BUDGETS_TAG, CHALLENGER, LOGGED_MODEL_NAME, PROVENANCE_TAGS,
                                      SHA_TAG, SWEEP_RUN_TAG, TRAIN_RUN_TAG)
from metaembed.registry.params import RegistryParams
from metaembed.registry.store import reaching, registry_client
from metaembed.registry.table import budget_markdown
from metaembed.stage_outputs import MissingStageOutput, StageOutputError, SweepBudgets, TrainReport
from metaembed.tracking import TrackingParams
from metaembed.tracking.redact import redact_uri

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
# What the pyfunc imports at load time, pinned to the versions that trained the model.
RUNTIME_PACKAGES = ("mlflow", "torch", "transformers", "tokenizers", "safetensors", "peft", "pillow",
                    "numpy", "pandas", "pydantic", "pyyaml")


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    created: bool
    train_run_id: str
    model_sha256: str
    table: SweepBudgets
    tracking_uri: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class Inputs:
    registry: RegistryParams
    tracking: TrackingParams
    model_dir: Path
    train_run_id: str
    table: SweepBudgets


def read_inputs(params_path: str | Path = "params.yaml", root: str | Path = ".") -> Inputs:
    """Everything registration needs from params.yaml and the earlier stages' outputs."""
    root = Path(root)
    params = load_root(params_path)
    model_dir = root / params.model_dir
    if not (model_dir / CONFIG_FILE).is_file():
        raise MissingStageOutput(f"{model_dir} holds no saved model ({CONFIG_FILE} missing): run the train stage first")
    train_run_id = TrainReport.read(root / params.train_report_path).mlflow_run_id
    budgets_path = root / params.budgets_path
    table = SweepBudgets.read(budgets_path)
    _check_measured_run(table, train_run_id, budgets_path)
    return Inputs(
        registry=params.registry,
        tracking=params.tracking,
        model_dir=model_dir,
        train_run_id=train_run_id,
        table=table,
    )


def _check_measured_run(table: SweepBudgets, train_run_id: str, source: Path) -> None:
    """The sweep names the training run whose model it measured: a table from another run (a sweep
    that did not re-run after training) would be registered as this model's quality and cost."""
    if table.mlflow_run_id is None:
        raise StageOutputError(f"{source}: mlflow_run_id is null (the sweep ran without MLflow), so nothing ties "
                               "it to the trained model; re-run the sweep with MLflow (`dvc repro sweep`)")
    if table.mlflow_run_id != train_run_id:
        raise StageOutputError(f"{source} measured training run {table.mlflow_run_id}, but the train stage's "
                               f"report names run {train_run_id}: the sweep is older than the model; "
                               "re-run evaluate and sweep (`dvc repro sweep`)")


def register(params_path: str | Path = "params.yaml", root: str | Path = ".") -> Registration:
    inputs = read_inputs(params_path, root)
    client = registry_client(inputs.tracking, root)
    return register_model(client, inputs)


def register_model(client: MlflowClient, inputs: Inputs) -> Registration:
    """`client` must be on the store mlflow is configured for: `registry_client` does both."""
    name, uri = inputs.registry.model_name, client.tracking_uri
    digest = folder_sha256(inputs.model_dir)
    with reaching(uri, f"registering {inputs.model_dir} as {name!r}"):
        version = _find_version(client, name, digest)
        created = version is None
        if created:
            version = _create_version(client, inputs, digest)
        else:
            _refresh_table(client, name, version, inputs.table)
        client.set_registered_model_alias(name, CHALLENGER, version)
    return Registration(name, version, created, inputs.train_run_id, digest, inputs.table, uri)


def folder_sha256(folder: Path) -> str:
    """sha256 over the folder's relative file paths and contents, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def _find_version(client: MlflowClient, name: str, digest: str) -> str | None:
    found = client.search_model_versions(f"name = '{name}' and tags.`{SHA_TAG}` = '{digest}'")
    newest = max((int(v.version) for v in found), default=None)  # the sqlite store gives ints
    return None if newest is None else str(newest)


def _create_version(client: MlflowClient, inputs: Inputs, digest: str) -> str:
    import mlflow

    run = _training_run(client, inputs.train_run_id)
    # Reopening the training run puts the logged model next to the metrics that describe it.
    with mlflow.start_run(run_id=run.info.run_id), warnings.catch_warnings():
        # The signature is explicit; an input example would make mlflow load the model to check it.
        warnings.filterwarnings("ignore", message=".*(input example was not provided|Add type hints).*")
        logged = mlflow.pyfunc.log_model(
            name=LOGGED_MODEL_NAME,
            python_model=str(PYFUNC_FILE),
            artifacts={ARTIFACT_KEY: str(inputs.model_dir)},
            signature=signature(embedding_dim(inputs.model_dir)),
            pip_requirements=pip_requirements(),
        )
    tags = {key: run.data.tags[key] for key in PROVENANCE_TAGS if key in run.data.tags}
    tags |= {
        SHA_TAG: digest,
        TRAIN_RUN_TAG: inputs.train_run_id,
        SWEEP_RUN_TAG: inputs.table.mlflow_run_id,
        BUDGETS_TAG: inputs.table.compact_json(),
    }
    name = inputs.registry.model_name
    version = mlflow.register_model(logged.model_uri, name, tags=tags).version
    client.update_model_version(name, version, description=budget_markdown(inputs.table))
    return str(version)


def _training_run(client: MlflowClient, run_id: str):
    from mlflow.exceptions import MlflowException

    from metaembed.registry.store import is_missing

    try:
        return client.get_run(run_id)
    except MlflowException as error:
        if not is_missing(error):
            raise
    # Not transient (no retry helps): the stage output points at a run this store never had.
    raise StageOutputError(f"training run {run_id} (from the train stage's metrics.json) is not in "
                     f"{redact_uri(client.tracking_uri)}: re-run training (`dvc repro --force train`) against this store")


def _refresh_table(client: MlflowClient, name: str, version: str, table: SweepBudgets) -> None:
    """Same model, re-evaluated (e.g. a changed sweep): its version shows the newest table."""
    current = client.get_model_version(name, version)
    if current.tags.get(BUDGETS_TAG) != table.compact_json():
        client.set_model_version_tag(name, version, BUDGETS_TAG, table.compact_json())
        client.update_model_version(name, version, description=budget_markdown(table))


def embedding_dim(model_dir: Path) -> int:
    """D of the saved model, from its configs (no weights are loaded): -1 when unknown."""
    config = json.loads((model_dir / CONFIG_FILE).read_text())
    projection = (config.get("model") or {}).get("projection_dim")
    if projection:
        return int(projection)
    backbone = model_dir / "backbone" / "config.json"
    if not backbone.is_file():  # LoRA models keep only the adapter; the base config is elsewhere
        return -1
    content = json.loads(backbone.read_text())
    return int((content.get("text_config") or content).get("hidden_size", -1))


def signature(dim: int):
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([ColSpec("string", "text", required=False), ColSpec("string", "image", required=False)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, dim))]),
        params=ParamSchema([
            ParamSpec("side", "string", "query"),
            ParamSpec("budget", "long", 0),
            ParamSpec("batch_size", "long", 32),
        ]),
    )


def pip_requirements() -> list[str]:
    from metaembed import __version__

    pins = []
    for package in RUNTIME_PACKAGES:
        try:
            pins.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    # Not on a package index: install it from this repository (see docs/registry.md).
    return pins + [f"metaembed=={__version__}"]
