"""Shared fixtures: offline settings, one tiny backbone per test session, a saved tiny model with a
small plain corpus and its index (the service and its benchmark), and a small prepared benchmark
with a params writer that trains on it in seconds."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

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
import yaml  # noqa: E402

from metaembed.config import apply_overrides  # noqa: E402
from metaembed.synth.generate import generate  # noqa: E402
from metaembed.synth.params import DataParams  # noqa: E402
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


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory, backbone_params) -> Path:
    """An untrained MetaEmbed with 4 query and 8 candidate meta tokens, saved as training would."""
    import torch

    from metaembed.backbones import load_backbone
    from metaembed.model import MetaEmbed, ModelParams

    torch.manual_seed(0)
    model = MetaEmbed(load_backbone(backbone_params), ModelParams(num_query_meta=4, num_candidate_meta=8),
                      backbone_params)
    return model.save_pretrained(tmp_path_factory.mktemp("model") / "model")


# ---- a small plain corpus and its index (tests/serving, tests/benchmarks) -----------------------

PLAIN_TEXTS = {
    "doc0.txt": "a red circle on a white page",
    "doc1.txt": "the quarterly revenue table for 2023",
    "notes/doc2.txt": "a blue square",
    "notes/doc3.txt": "how to bake sourdough bread",
}
PLAIN_IMAGES = {"red.png": (220, 40, 40), "pages/blue.jpg": (40, 70, 220)}


def write_plain_corpus(folder: Path) -> Path:
    """Four texts and two images in nested folders, a hidden file and a file of another type."""
    for name, text in PLAIN_TEXTS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    for name, colour in PLAIN_IMAGES.items():
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
    return dict(PLAIN_TEXTS)


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


@pytest.fixture
def images():
    """Three distinct small RGB images (one non-square)."""
    rng = np.random.default_rng(0)
    sizes = [(112, 112), (96, 128), (112, 112)]
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in sizes]

@pytest.fixture(scope="session")
def prepared_dir(tmp_path_factory) -> Path:
    from metaembed.data.params import PrepareParams
    from metaembed.data.prepare import run_prepare

    root = tmp_path_factory.mktemp("training-data")
    data = DataParams.model_validate({
        "train": {"rows_per_subset": 16},
        "eval": {"queries_per_subset": 4, "candidates": 12},
        "pages": {"train_docs": 4, "eval_docs": 4},
    })
    generate(data, root / "raw", progress=False)
    run_prepare(root / "raw", PrepareParams(out_dir=str(root / "prepared")), progress=False)
    return root / "prepared"


@pytest.fixture
def write_params(tmp_path, prepared_dir, backbone_params):
    """Write a params.yaml for a few-step training in tmp_path; overrides are {"section.key": value}."""

    def write(overrides: dict | None = None, name: str = "params.yaml") -> Path:
        """Outputs, checkpoints and the MLflow store go beside the written params file."""
        path = tmp_path / name
        base = path.parent
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        params["backbone"].update(name_or_path="tiny", cache_dir=backbone_params.cache_dir)
        params["model"].update(num_query_meta=4, num_candidate_meta=8)
        params["loss"]["groups"] = [[1, 1, 1.0], [2, 4, 1.0], [4, 8, 1.0]]
        params["prepare"]["out_dir"] = str(prepared_dir)
        params["train"].update(
            max_steps=4, batch_size=8, warmup_steps=1, val_every_n_steps=2, checkpoint_every_n_steps=2,
            val_queries=4, val_candidates=6, num_threads=1,
            output_dir=str(base / "model"), report_dir=str(base / "report"),
            checkpoint_dir=str(base / "checkpoints"),
        )
        params["tracking"].update(tracking_uri=f"sqlite:///{base}/mlflow.db",
                                  artifact_location=str(base / "mlartifacts"), system_metrics=False)
        params = apply_overrides(params, overrides or {})
        if params["model"]["pooling"] == "tokens":
            params["model"]["centering"] = False  # needs a fixed number of vectors
        path.write_text(yaml.safe_dump(params))
        return path

    return write


@pytest.fixture
def baselines_params(tmp_path, backbone_params) -> Path:
    """A params.yaml whose `metaembed baselines` trains and evaluates every variant in seconds (tiny data in tmp_path)."""
    from metaembed.data.params import PrepareParams
    from metaembed.data.prepare import run_prepare
    from metaembed.synth.generate import generate
    from metaembed.synth.params import DataParams

    data = DataParams.model_validate({"train": {"rows_per_subset": 8},
                                      "eval": {"queries_per_subset": 2, "candidates": 6, "twins_per_query": 3},
                                      "pages": {"train_docs": 2, "eval_docs": 2}})
    generate(data, tmp_path / "raw", progress=False)
    run_prepare(tmp_path / "raw", PrepareParams(out_dir=str(tmp_path / "prepared")), progress=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["backbone"].update(name_or_path="tiny", cache_dir=backbone_params.cache_dir)
    params["model"].update(num_query_meta=2, num_candidate_meta=4)
    params["loss"]["groups"] = [[1, 1, 1.0], [2, 4, 1.0]]
    params["prepare"]["out_dir"] = str(tmp_path / "prepared")
    params["train"].update(batch_size=4, sub_batch_size=2, warmup_steps=0, val_every_n_steps=100,
                           checkpoint_every_n_steps=100, num_threads=1)
    params["tracking"].update(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
                              artifact_location=str(tmp_path / "mlartifacts"), system_metrics=False)
    params["evaluate"].update(budgets=[[1, 1], [2, 4]], batch_size=32)
    params["baselines"].update(out_dir=str(tmp_path / "baselines"), results_doc=str(tmp_path / "results.md"))
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


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


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _services_in(folder: Path, **environ: str):
    from metaembed.services import settings

    ports = {"METAEMBED_PG_PORT": str(_free_port()), "METAEMBED_MLFLOW_PORT": str(_free_port()),
             "METAEMBED_PREFECT_PORT": str(_free_port())}
    return settings.load(folder, {**ports, **environ})


@pytest.fixture(scope="session", name="services_in")
def services_in_fixture():
    """services_in(folder, **environ): service settings of a stack of its own, on free loopback ports."""
    return _services_in


@pytest.fixture(scope="session")
def services_root():
    """Under /tmp, not pytest's private tmp root: PostgreSQL runs as the `postgres` user when we are root."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="metaembed-services-"))
    folder.chmod(0o755)  # only traversed; the secrets inside are 0600
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def services(services_root):
    """The real team stack (PostgreSQL, MLflow server on it, Prefect server), started once per session.
    A stack that cannot start fails the tests that need it, with the reason; it never skips them."""
    from unittest import mock

    from metaembed.services import settings, stack

    running = _services_in(services_root / "stack")
    # One MLflow worker starts (and restarts) faster; a scheduler loop of 1 s lets a test see scheduled runs.
    quick = {"METAEMBED_MLFLOW_WORKERS": "1", "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",
             "PREFECT_UI_ENABLED": "false", "PREFECT_API_URL": ""}
    try:
        with mock.patch.dict(os.environ, quick):
            stack.start_all(running)
    except (settings.ServicesError, OSError) as error:
        stack.stop_all(running)
        pytest.fail(f"the services did not start: {error}")
    yield running
    stack.stop_all(running)


@pytest.fixture(scope="session", name="load_flow")
def load_flow_fixture():
    """load_flow(name): flows/<name>.py as a fresh module (flows/ is not a package), so a test can patch its globals."""
    return _load_flow


def _load_flow(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{name}_flow", REPO / "flows" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class ProcessWorker:
    pool: str
    deployment: str  # the deployments' name: "<flow name>/<deployment>" runs one
    api_url: str


@pytest.fixture(scope="session")
def process_worker(services, services_root):
    """flows/deploy.py's work pool and deployments on the services' Prefect server, and one Prefect
    process worker of that pool (3 flow runs at once), started like `make worker` in its own session."""
    import runpy
    import uuid
    from unittest import mock

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from metaembed.services import processes

    pool, name = f"pool-{uuid.uuid4().hex[:8]}", "test"
    folder = services_root / pool
    folder.mkdir()
    env = os.environ | services.client_env() | {
        "PREFECT_HOME": str(folder / "prefect-home"), "OMP_NUM_THREADS": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_HEARTBEAT_SECONDS": "5"}
    # The server only for this set-up: tests after this fixture keep their own Prefect settings.
    with temporary_settings(updates={PREFECT_API_URL: services.prefect_api_url}), \
            mock.patch.dict(os.environ, {"PREFECT_API_URL": services.prefect_api_url}):
        runpy.run_path(str(REPO / "flows" / "deploy.py"))["deploy"](name, pool, REPO)
        worker = processes.launch([str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", pool,
                                   "--type", "process", "--limit", "3", "--name", f"{pool}-worker"],
                                  folder / "worker.pid", folder / "worker.log", env)
        try:
            _wait_for_worker(get_client, pool, worker, folder / "worker.log")
        except BaseException:
            processes.stop_group(worker.pid)
            raise
    yield ProcessWorker(pool, name, services.prefect_api_url)
    processes.stop_group(worker.pid)


def _wait_for_worker(get_client, pool: str, worker, log: Path, timeout_s: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                pytest.fail(f"the Prefect worker exited ({worker.returncode}):\n{log.read_text()[-3000:]}")
            if client.read_workers_for_work_pool(pool):
                return
            time.sleep(0.5)
    pytest.fail(f"no worker of pool {pool} registered within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")
