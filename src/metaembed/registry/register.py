"""Register the trained model as a version of a named MLflow model, once per distinct model.

The model is logged into the training run as a pyfunc "from code" (pyfunc_model.py) with the
saved folder as its artifact, then registered. A version is "the same model" when its
`metaembed.model_sha256` tag equals the sha256 of the saved folder, so re-running the pipeline
with nothing changed registers nothing; timestamps play no part. The pipeline's current model
always carries the `challenger` alias.

The version carries the sweep's quality/cost table and, when the index stage ran for this model,
its measured search latency per budget (tags the promotion gate reads), and a tag linking the
index that stage built.
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
from metaembed.registry.digest import folder_sha256
from metaembed.registry.indexes import link_index
from metaembed.registry.names import (ARTIFACT_KEY, BUDGETS_TAG, CHALLENGER, INDEX_LATENCY_TAG, LOGGED_MODEL_NAME,
                                      PROVENANCE_TAGS, SHA_TAG, SWEEP_RUN_TAG, TRAIN_RUN_TAG)
from metaembed.registry.params import RegistryParams
from metaembed.registry.store import reaching, registry_client
from metaembed.registry.table import budget_markdown
from metaembed.stage_outputs import IndexLatency, MissingStageOutput, StageOutputError, SweepBudgets, TrainReport
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
    index_latency: IndexLatency | None = None  # None: the index stage did not run for this model
    index_dir: Path | None = None
    index_tag: str | None = None  # the version tag that links the index stage's index

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
    model_sha256: str = ""  # folder_sha256 of model_dir ("": computed when registering)
    index_latency: IndexLatency | None = None
    index_dir: Path | None = None


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
    digest = folder_sha256(model_dir)
    index_dir = root / params.index_dir
    return Inputs(
        registry=params.registry,
        tracking=params.tracking,
        model_dir=model_dir,
        train_run_id=train_run_id,
        table=table,
        model_sha256=digest,
        index_latency=read_index_latency(root / params.index_latency_path, index_dir, table, digest),
        index_dir=index_dir,
    )


def read_index_latency(path: Path, index_dir: Path, table: SweepBudgets, digest: str) -> IndexLatency | None:
    """The index stage's output for this model and sweep, or None when the stage did not run.

    Output of the stage for another model, or an index folder changed since it was timed, is an
    error: its latency would be registered as this model's."""
    try:
        latency = IndexLatency.read(path)
    except MissingStageOutput:
        return None
    rerun = f"re-run the index stage (`dvc repro index`), or delete {path} to register without measured latency"
    if latency.model_sha256 != digest:
        raise StageOutputError(f"{path} timed an index of the model with sha256 {latency.model_sha256[:12]}..., but "
                               f"the trained model hashes to {digest[:12]}...: the index stage is older than the "
                               f"model; {rerun}")
    missing = [row.name for row in table.budgets if latency.row(row.name) is None]
    if missing:
        raise StageOutputError(f"{path} has no latency for the sweep's budget(s) {', '.join(missing)}: {rerun}")
    manifest = index_dir / "manifest.json"
    found = hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else None
    if found != latency.index.manifest_sha256:
        state = "is missing" if found is None else "is not the index it timed (manifest sha256 differs)"
        raise StageOutputError(f"{manifest} {state}, per {path}: {rerun}")
    return latency


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
    """Register on `client`'s store; mlflow's process-wide tracking and registry URIs are set to it."""
    name, uri = inputs.registry.model_name, client.tracking_uri
    digest = inputs.model_sha256 or folder_sha256(inputs.model_dir)
    with reaching(uri, f"registering {inputs.model_dir} as {name!r}"):
        version = _find_version(client, name, digest)
        created = version is None
        if created:
            version = _create_version(client, inputs, digest)
        else:
            _refresh_tables(client, name, version, inputs)
        client.set_registered_model_alias(name, CHALLENGER, version)
    link = _link_index(client, name, version, inputs) if inputs.index_latency else None
    return Registration(name, version, created, inputs.train_run_id, digest, inputs.table, uri,
                        inputs.index_latency, inputs.index_dir, link)


def _find_version(client: MlflowClient, name: str, digest: str) -> str | None:
    found = client.search_model_versions(f"name = '{name}' and tags.`{SHA_TAG}` = '{digest}'")
    newest = max((int(v.version) for v in found), default=None)  # the sqlite store gives ints
    return None if newest is None else str(newest)


def _create_version(client: MlflowClient, inputs: Inputs, digest: str) -> str:
    import mlflow

    run = _training_run(client, inputs.train_run_id)
    # The fluent calls below use mlflow's process-wide stores: put them on the client's, or a store
    # configured earlier in the process (another project, a test) would receive the model version.
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_registry_uri(getattr(client, "_registry_uri", None) or client.tracking_uri)
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
    if inputs.index_latency is not None:
        tags[INDEX_LATENCY_TAG] = inputs.index_latency.compact_json()
    name = inputs.registry.model_name
    version = mlflow.register_model(logged.model_uri, name, tags=tags).version
    client.update_model_version(name, version, description=budget_markdown(inputs.table, inputs.index_latency))
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


def _refresh_tables(client: MlflowClient, name: str, version: str, inputs: Inputs) -> None:
    """Same model, re-evaluated (a changed sweep, a re-timed index): its version shows the newest tables.

    Without index stage output now, an index latency tag from an earlier registration stays: it
    was measured on this same model."""
    current = client.get_model_version(name, version).tags
    wanted = {BUDGETS_TAG: inputs.table.compact_json()}
    if inputs.index_latency is not None:
        wanted[INDEX_LATENCY_TAG] = inputs.index_latency.compact_json()
    changed = {key: value for key, value in wanted.items() if current.get(key) != value}
    for key, value in changed.items():
        client.set_model_version_tag(name, version, key, value)
    if changed:
        client.update_model_version(name, version, description=budget_markdown(inputs.table, inputs.index_latency))


def _link_index(client: MlflowClient, name: str, version: str, inputs: Inputs) -> str:
    """Tag the version with the index stage's index, as `metaembed index build` links its indexes."""
    built = inputs.index_latency.index
    record = {"manifest_sha256": built.manifest_sha256, "candidates": str(built.candidates), "dtype": built.dtype,
              "built_at": built.built_at}
    return link_index(client, name, version, inputs.index_dir, record)


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
