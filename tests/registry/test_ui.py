"""`metaembed ui`: the MLflow server over the project's store shows the run, metrics, model, aliases."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from metaembed.commands.ui import server_command
from metaembed.config import load_section
from metaembed.registry.gate import promote
from metaembed.registry.params import PromotionParams
from metaembed.registry.register import register
from metaembed.tracking import TrackingParams

CHROMIUM = next((shutil.which(name) for name in ("chromium-headless-shell", "chromium", "chromium-browser")
                 if shutil.which(name)), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, path: str, **query) -> dict:
    with urllib.request.urlopen(f"{url}{path}?{urllib.parse.urlencode(query)}", timeout=10) as response:
        return json.load(response)


@pytest.fixture
def ui(project, tmp_path):
    """A champion in the store, and `metaembed ui`'s server over it on a free 127.0.0.1 port."""
    run_id = project.train(0, quality=0.5)
    register(project.params_path, project.root)
    promote(project.client(), project.model_name, load_section("promotion", PromotionParams, project.params_path))
    with serve_ui(load_section("tracking", TrackingParams, project.params_path), project.root, tmp_path) as url:
        yield url, run_id


@contextmanager
def serve_ui(tracking: TrackingParams, root: Path, tmp_path: Path) -> Iterator[str]:
    """`metaembed ui`'s server over the store of `tracking` on a free 127.0.0.1 port; yields its URL."""
    port, log = free_port(), tmp_path / "ui.log"
    command = server_command(tracking, root, port)
    with log.open("w") as sink:
        server = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, f"mlflow server exited:\n{log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"mlflow server not healthy in 120 s:\n{log.read_text()[-3000:]}")
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # uvicorn runs as a child: stop the whole group
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


@pytest.mark.slow
def test_the_ui_serves_the_run_its_metrics_the_model_and_its_aliases(project, ui, tmp_path):
    url, run_id = ui
    assert "--host" in server_command(TrackingParams()) and "127.0.0.1" in server_command(TrackingParams())

    run = get(url, "/api/2.0/mlflow/runs/get", run_id=run_id)["run"]
    assert run["info"]["status"] == "FINISHED"
    assert {m["key"]: m["value"] for m in run["data"]["metrics"]}["val/p_at_1_full"] == 0.5
    assert {t["key"]: t["value"] for t in run["data"]["tags"]}["git.commit"] == "c0ffee"

    model = get(url, "/api/2.0/mlflow/registered-models/get", name=project.model_name)["registered_model"]
    assert {a["alias"]: a["version"] for a in model["aliases"]} == {"champion": "1", "challenger": "1"}
    champion = get(url, "/api/2.0/mlflow/registered-models/alias", name=project.model_name, alias="champion")
    version = champion["model_version"]
    assert version["run_id"] == run_id and re.search(r"\|\s*4x8\s*\|\s*0\.5000\s*\|", version["description"])
    assert {t["key"]: t["value"] for t in version["tags"]}["gate.decision"] == "promoted"
    record = get(url, "/api/2.0/mlflow/experiments/get", experiment_id=run["info"]["experiment_id"])["experiment"]
    assert {t["key"]: t["value"] for t in record["tags"]}["mlflow.experimentKind"] == "custom_model_development"

    require_browser()
    experiment = run["info"]["experiment_id"]
    run_page = render(f"{url}/#/experiments/{experiment}/runs/{run_id}", tmp_path / "run-page.png")
    assert "train" in run_page and "git.commit" in run_page and "c0ffee" in run_page
    model_page = render(f"{url}/#/models/{project.model_name}/versions/1", tmp_path / "version-page.png")
    assert "champion" in model_page and "challenger" in model_page
    assert "promoted" in model_page or "4x8" in model_page, "the gate's decision is not on the version page"
    # The same words must not come from the app's own chrome: an unknown model's page lacks them.
    unknown = render(f"{url}/#/models/no-such-model/versions/1", tmp_path / "unknown.png", blank_ok=True)
    assert "challenger" not in unknown and "c0ffee" not in unknown
    keep_screenshots(tmp_path, "run-page.png", "version-page.png")


def require_browser() -> None:
    """Skip (fail in CI) the rendering part of a test where no headless Chromium is installed."""
    if CHROMIUM is None:
        reason = "no headless Chromium here (apt-get install chromium; `make test` installs it as root)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must check the pages in a real browser")
        pytest.skip(f"{reason}: the REST checks above passed, the pages were not rendered")


def keep_screenshots(folder: Path, *names: str) -> None:
    keep = os.environ.get("METAEMBED_KEEP_SCREENSHOTS")
    for name in names if keep else ():
        shutil.copy(folder / name, Path(keep) / name)


def render(page: str, screenshot: Path, blank_ok: bool = False) -> str:
    """The page's text after its scripts ran, and a screenshot of it: one headless Chromium run (the
    same as `make ui-check`'s)."""
    from metaembed.ui_check.browser import render as chromium_render

    rendered = chromium_render(CHROMIUM, page, screenshot, height=900)
    assert blank_ok or not rendered.blank, f"{page} rendered blank"
    return rendered.text


@pytest.fixture
def pipeline_store(tmp_path, monkeypatch):
    """What one pipeline flow run leaves in MLflow, built with the tracking functions the flow and the
    stages use: a parent run over a train run that read data/prepared, and a run started outside the flow."""
    from metaembed.orchestration.parent import outcome_tags
    from metaembed.tracking import lightning_logger
    from metaembed.tracking.datasets import TRAINING
    from metaembed.tracking.pipeline_run import PARENT_RUN_ENV, pipeline_run
    from metaembed.tracking.provenance import run_tags

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(PARENT_RUN_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    tracking = TrackingParams(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", artifact_location=str(tmp_path / "mlartifacts"),
                              experiment="metaembed-ui-pipeline", system_metrics=False)
    (tmp_path / "data.dvc").write_text("outs:\n- md5: 0123abcd.dir\n  path: data/raw\n")
    (tmp_path / "data" / "prepared" / "train").mkdir(parents=True)
    (tmp_path / "data" / "prepared" / "train" / "rows.parquet").write_bytes(b"rows")
    tags = run_tags(tmp_path, prepared=tmp_path / "data" / "prepared")

    def stage_run(name: str) -> str:
        logger = lightning_logger(tracking, run_name=name, tags=tags, root=tmp_path, data_context=TRAINING)
        logger.log_metrics({"val/p_at_1_full": 0.5}, step=0)
        logger.finalize("success")
        return logger.run_id

    with pipeline_run(tracking, tmp_path, "flow-ui", "pipeline brave-otter", {"pipeline.stages": "prepare, train"}) as parent:
        with monkeypatch.context() as stage_env:  # what the flow hands the `dvc repro train` subprocess
            stage_env.setenv(PARENT_RUN_ENV, parent.run_id)
            child = stage_run("train-in-flow")
        parent.tag(outcome_tags({"prepare": "skipped (unchanged)", "train": "ran"}) | {"pipeline.gate": "promote"})
    outside = lightning_logger(tracking, run_name="train-outside", root=tmp_path).run_id  # `metaembed train`, no data tags
    MlflowClient(tracking.tracking_uri).set_terminated(outside)
    yield tracking, {"parent": parent.run_id, "child": child, "outside": outside}, tags["data.hash"][:36]
    mlflow.set_tracking_uri(None)


@pytest.mark.slow
def test_the_ui_shows_the_pipeline_run_over_its_stage_run_and_the_data_it_read(pipeline_store, tmp_path):
    tracking, runs, digest = pipeline_store
    with serve_ui(tracking, tmp_path, tmp_path) as url:
        child = get(url, "/api/2.0/mlflow/runs/get", run_id=runs["child"])["run"]
        assert {t["key"]: t["value"] for t in child["data"]["tags"]}["mlflow.parentRunId"] == runs["parent"]
        [read] = child["inputs"]["dataset_inputs"]
        assert (read["dataset"]["name"], read["dataset"]["digest"]) == ("prepared", digest)

        require_browser()
        page = f"{url}/#/experiments/{child['info']['experiment_id']}/runs/{{}}"
        child_page = render(page.format(runs["child"]), tmp_path / "child-run-page.png")
        assert "Parent run" in child_page and "pipeline brave-otter" in child_page
        assert "prepared" in child_page and digest[:8] in child_page and "training" in child_page, "no dataset shown"
        parent_page = render(page.format(runs["parent"]), tmp_path / "parent-run-page.png")
        assert "Child runs" in parent_page and "train-in-flow" in parent_page
        assert "pipeline.stage.train" in parent_page and "skipped (unchanged)" in parent_page
        # The words must come from the runs, not from the app: a run outside the flow shows none of them.
        outside_page = render(page.format(runs["outside"]), tmp_path / "outside-run-page.png")
        assert "train-outside" in outside_page
        assert "Parent run" not in outside_page and "brave-otter" not in outside_page and digest[:8] not in outside_page
        # The runs list: one row per pipeline run, its stage runs folded under it; a run outside the flow on its own.
        listed = render(f"{url}/#/experiments/{child['info']['experiment_id']}/runs", tmp_path / "runs-list.png")
        listed = " ".join(listed.split())  # the table lays a name out over several lines
        assert "pipeline brave-otter" in listed and "train-outside" in listed and "3 matching runs" in listed
        assert "train-in-flow" not in listed, "the stage run is not folded under its pipeline run"
    keep_screenshots(tmp_path, "child-run-page.png", "parent-run-page.png", "runs-list.png")
