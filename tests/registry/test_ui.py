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

    if CHROMIUM is None:
        pytest.skip("no headless Chromium here: the REST checks above passed, the screenshot was not taken")
    screenshot = tmp_path / "run-page.png"
    page = f"{url}/#/experiments/{run['info']['experiment_id']}/runs/{run_id}"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1400,900", "--virtual-time-budget=20000", f"--screenshot={screenshot}", page],
                   check=True, capture_output=True, timeout=120)
    from PIL import Image

    with Image.open(screenshot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert image.size == (1400, 900)
    assert colours is None or len(colours) > 50, "the page rendered blank"
    if os.environ.get("METAEMBED_KEEP_SCREENSHOT"):
        shutil.copy(screenshot, os.environ["METAEMBED_KEEP_SCREENSHOT"])
