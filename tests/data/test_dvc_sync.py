"""`metaembed data ensure` logic in a scratch DVC project: cache, remote, regeneration, mismatch."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from metaembed.data.dvc_sync import DataSyncError, DvcRunner, ensure, is_in_sync, pin
from metaembed.synth.generate import generate


@pytest.fixture
def project(tmp_path, make_params):
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], cwd=tmp_path, check=True)
    params = make_params(train={"rows_per_subset": 2}, eval={"queries_per_subset": 2, "candidates": 12},
                         pages={"train_docs": 2, "eval_docs": 2})
    generate(params, tmp_path / "data" / "raw", progress=False)
    pin(tmp_path)
    return tmp_path, params


def test_pin_writes_one_root_data_dvc(project):
    repo, _ = project
    spec = yaml.safe_load((repo / "data.dvc").read_text())
    assert spec["outs"][0]["path"] == "data/raw" and spec["outs"][0]["md5"].endswith(".dir")
    assert not (repo / "data" / "raw.dvc").exists()
    assert is_in_sync(DvcRunner(repo))


def test_ensure_restores_regenerates_pulls_and_verifies(project, tmp_path_factory):
    repo, params = project
    regenerate = lambda: generate(params, repo / "data" / "raw", progress=False)  # noqa: E731
    logs = []
    assert ensure(repo, regenerate, logs.append) == "already"
    shutil.rmtree(repo / "data" / "raw")
    assert ensure(repo, regenerate, logs.append) == "cache"
    shutil.rmtree(repo / "data" / "raw")
    shutil.rmtree(repo / ".dvc" / "cache")
    assert ensure(repo, regenerate, logs.append) == "regenerated"
    assert "no DVC remote configured" in logs[-1]
    assert is_in_sync(DvcRunner(repo))

    remote = tmp_path_factory.mktemp("remote")
    dvc = DvcRunner(repo)
    dvc("remote", "add", "-d", "store", str(remote), check=True)
    dvc("commit", "--force", "data.dvc", check=True)
    dvc("push", "data.dvc", check=True)
    shutil.rmtree(repo / "data" / "raw")
    shutil.rmtree(repo / ".dvc" / "cache")
    assert ensure(repo, lambda: pytest.fail("must pull, not regenerate"), logs.append) == "remote"


def test_ensure_explains_a_mismatch_with_the_pinned_data(project, make_params):
    repo, _ = project
    shutil.rmtree(repo / "data" / "raw")
    shutil.rmtree(repo / ".dvc" / "cache")
    changed = make_params(seed=5, train={"rows_per_subset": 2}, eval={"queries_per_subset": 2, "candidates": 12},
                          pages={"train_docs": 2, "eval_docs": 2})
    with pytest.raises(DataSyncError, match=r"differs from what data\.dvc pins.*metaembed data synth --pin"):
        ensure(repo, lambda: generate(changed, repo / "data" / "raw", progress=False), lambda _: None)
