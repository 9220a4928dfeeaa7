"""A team's DVC remote: `dvc push` after a run, then a fresh clone's pipeline stages pull the unchanged
outputs instead of rebuilding them, from a local folder and over the S3 protocol (moto's server)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
import yaml

from metaembed.orchestration.stages import PULLED, RAN, dvc_stage

BUILD = ("python -c \"import pathlib, sys; n = int(open('input.txt').read()); "
         "pathlib.Path('out').mkdir(exist_ok=True); pathlib.Path('out/result.txt').write_text(str(n * n)); "
         "open(sys.argv[1], 'a').write('built\\n')\" {log}")


def _git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


def _dvc(repo, *args):
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _project(folder, builds):
    """A git + DVC project with one stage that records every time it really builds."""
    folder.mkdir()
    _git(folder, "init", "-q")
    _dvc(folder, "init", "-q")
    _dvc(folder, "config", "core.analytics", "false")
    (folder / "input.txt").write_text("7")
    stage = {"cmd": BUILD.format(log=builds), "deps": ["input.txt"], "outs": ["out"]}
    (folder / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"build": stage}}))
    return folder


@pytest.fixture
def s3_endpoint(monkeypatch):
    """moto's S3 server on a free loopback port, with a bucket; fake credentials in the environment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for variable, value in {"AWS_ACCESS_KEY_ID": "team", "AWS_SECRET_ACCESS_KEY": "team-secret",
                            "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(variable, value)  # credentials stay out of .dvc/config, which git tracks
    deadline = time.monotonic() + 60
    while True:
        try:
            import boto3

            boto3.client("s3", endpoint_url=url).create_bucket(Bucket="team-dvc")
            break
        except Exception:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"moto's S3 server did not start on {url}")
            time.sleep(0.3)
    yield url
    server.terminate()
    server.wait(timeout=10)


def _add_remote(repo, kind, tmp_path, request):
    if kind == "local":
        _dvc(repo, "remote", "add", "-d", "team", str(tmp_path / "remote"))
    else:
        _dvc(repo, "remote", "add", "-d", "team", "s3://team-dvc/cache")
        _dvc(repo, "remote", "modify", "team", "endpointurl", request.getfixturevalue("s3_endpoint"))


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_fresh_clone_pulls_unchanged_outputs_instead_of_rebuilding(tmp_path, kind, request):
    builds = tmp_path / "builds.log"
    repo = _project(tmp_path / "repo", builds)
    _add_remote(repo, kind, tmp_path, request)
    assert dvc_stage.fn("build", str(repo)) == RAN
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "a run")
    assert "2 files pushed" in _dvc(repo, "push")  # the folder's file and its .dir listing

    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(repo), str(clone))
    assert not (clone / "out").exists()
    assert dvc_stage.fn("build", str(clone)) == PULLED
    assert (clone / "out" / "result.txt").read_text() == "49"
    assert builds.read_text().count("built") == 1  # pulled, not rebuilt

    (clone / "input.txt").write_text("8")  # a real change still runs the stage
    assert dvc_stage.fn("build", str(clone)) == RAN
    assert (clone / "out" / "result.txt").read_text() == "64" and builds.read_text().count("built") == 2
