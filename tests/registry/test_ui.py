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
from pathlib import Path

import pytest

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
    port, log = free_port(), tmp_path / "ui.log"
    command = server_command(load_section("tracking", TrackingParams, project.params_path), project.root, port)
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
        yield url, run_id
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

    if CHROMIUM is None:
        reason = "no headless Chromium here (apt-get install chromium; `make test` installs it as root)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must check the pages in a real browser")
        pytest.skip(f"{reason}: the REST checks above passed, the pages were not rendered")
    experiment = run["info"]["experiment_id"]
    run_page = render(f"{url}/#/experiments/{experiment}/runs/{run_id}", tmp_path / "run-page.png")
    assert "train" in run_page and "git.commit" in run_page and "c0ffee" in run_page
    model_page = render(f"{url}/#/models/{project.model_name}/versions/1", tmp_path / "version-page.png")
    assert "champion" in model_page and "challenger" in model_page
    assert "promoted" in model_page or "4x8" in model_page, "the gate's decision is not on the version page"
    # The same words must not come from the app's own chrome: an unknown model's page lacks them.
    unknown = render(f"{url}/#/models/no-such-model/versions/1", tmp_path / "unknown.png", blank_ok=True)
    assert "challenger" not in unknown and "c0ffee" not in unknown
    for name in ("run-page.png", "version-page.png"):
        keep = os.environ.get("METAEMBED_KEEP_SCREENSHOTS")
        if keep:
            shutil.copy(tmp_path / name, Path(keep) / name)


def render(page: str, screenshot: Path, blank_ok: bool = False) -> str:
    """The page's text after its scripts ran, in headless Chromium, and a screenshot of it."""
    from PIL import Image

    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,900",
             "--virtual-time-budget=20000"]
    subprocess.run([*flags, f"--screenshot={screenshot}", page], check=True, capture_output=True, timeout=120)
    with Image.open(screenshot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert image.size == (1400, 900)
    assert blank_ok or colours is None or len(colours) > 50, f"{page} rendered blank"
    dom = subprocess.run([*flags, "--dump-dom", page], check=True, capture_output=True, timeout=120, text=True).stdout
    return re.sub(r"<[^>]+>", " ", dom)
