"""run_tags: the params, the data and the commit of what ran, wherever the run was started."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from metaembed.tracking.provenance import content_hash, folder_hash, run_tags, written_by_dvc


def git(repo: Path, *args: str) -> str:
    command = ["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=t", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def test_params_hash_covers_the_values_used_and_the_path_names_the_file(tmp_path):
    side = tmp_path / "side.yaml"
    side.write_text("loss: {temperature: 0.05}\n")
    used = {"loss": {"temperature": 0.05, "mmr": True}, "train": {"lr": 0.1}}
    tags = run_tags(tmp_path, params_path=side, params=used)
    assert tags["params.path"] == str(side.resolve())
    assert tags["params.hash"] == content_hash(used)
    assert run_tags(tmp_path, params_path=side, params={"train": {"lr": 0.1}, "loss": {"mmr": True, "temperature": 0.05}})[
        "params.hash"] == tags["params.hash"], "key order is not content"
    assert run_tags(tmp_path, params_path=side, params={**used, "loss": {"temperature": 0.03, "mmr": True}})[
        "params.hash"] != tags["params.hash"]
    assert run_tags(tmp_path, params_path=None, params=used)["params.path"] == "unknown"


def test_data_hash_is_the_folder_the_run_reads_and_the_pin_is_kept(tmp_path):
    (tmp_path / "data.dvc").write_text("outs:\n- md5: 0123abcd.dir\n  path: data/raw\n")
    prepared = tmp_path / "elsewhere" / "prepared"
    (prepared / "train").mkdir(parents=True)
    (prepared / "train" / "a.parquet").write_bytes(b"rows")
    tags = run_tags(tmp_path, prepared=prepared)
    assert tags["data.hash"] == folder_hash(prepared) and len(tags["data.hash"]) == 64
    assert (tags["data.dvc_md5"], tags["data.path"]) == ("0123abcd.dir", str(prepared.resolve()))
    (prepared / "train" / "a.parquet").write_bytes(b"other rows")
    assert run_tags(tmp_path, prepared=prepared)["data.hash"] != tags["data.hash"]
    assert run_tags(tmp_path, prepared=tmp_path / "nowhere")["data.hash"] == "missing"
    assert run_tags(tmp_path)["data.hash"] == "0123abcd.dir"  # without a folder: the pin, as before


def test_git_tags_describe_the_code_root_not_where_the_run_started(tmp_path, monkeypatch):
    code, started = tmp_path / "code", tmp_path / "elsewhere"
    code.mkdir()
    started.mkdir()
    (code / "module.py").write_text("x = 1\n")
    git(code, "init", "-q")
    git(code, "add", "module.py")
    git(code, "commit", "-q", "-m", "init")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert run_tags(started)["git.commit"] == "unknown"
    tags = run_tags(started, code_root=code)
    assert (tags["git.commit"], tags["git.dirty"]) == (git(code, "rev-parse", "HEAD"), "false")


def committed_project(root: Path) -> Path:
    """A repository as a pipeline leaves it committed: code, params, dvc.yaml, dvc.lock and a pointer."""
    (root / "src").mkdir(parents=True)
    (root / "src" / "module.py").write_text("x = 1\n")
    (root / "params.yaml").write_text("train: {lr: 0.1}\n")
    (root / "dvc.yaml").write_text("stages: {train: {cmd: 'true'}}\n")
    (root / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (root / "data.dvc").write_text("outs:\n- md5: 0123abcd.dir\n  path: data/raw\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "init")
    return root


def test_files_dvc_rewrites_do_not_make_the_code_dirty(tmp_path):
    repo = committed_project(tmp_path / "repo")
    # What `dvc repro` and `dvc add` write mid-pipeline, staged and not, and untracked output.
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages: {train: {cmd: 'true'}}\n")
    assert run_tags(repo)["git.dirty"] == "false"  # " M dvc.lock" alone: its leading space is no path
    (repo / "data.dvc").write_text("outs:\n- md5: 4567cdef.dir\n  path: data/raw\n")
    git(repo, "add", "data.dvc")
    (repo / "model.bin").write_bytes(b"weights")
    assert git(repo, "status", "--porcelain"), "the repository must look changed to git"
    assert run_tags(repo)["git.dirty"] == "false"


@pytest.mark.parametrize("change", ["code", "params", "dvc.yaml", "staged", "deleted", "renamed to a pointer"])
def test_any_other_change_to_a_tracked_file_still_makes_it_dirty(tmp_path, change):
    repo = committed_project(tmp_path / "repo")
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages: {train: {cmd: 'true'}}\n")  # beside every change
    if change == "code":
        (repo / "src" / "module.py").write_text("x = 2\n")
    elif change == "params":
        (repo / "params.yaml").write_text("train: {lr: 0.2}\n")
    elif change == "dvc.yaml":
        (repo / "dvc.yaml").write_text("stages: {train: {cmd: 'false'}}\n")
    elif change == "staged":
        (repo / "src" / "module.py").write_text("x = 3\n")
        git(repo, "add", "src/module.py")
    elif change == "deleted":
        (repo / "src" / "module.py").unlink()
    else:
        git(repo, "mv", "src/module.py", "src/module.dvc")
    assert run_tags(repo)["git.dirty"] == "true", change


@pytest.mark.parametrize(("path", "expected"), [
    ("dvc.lock", True), ("sub/dir/dvc.lock", True), ("data.dvc", True), ("models/weights.dvc", True),
    ("dvc.yaml", False), ("params.yaml", False), (".dvc/config", False), ("src/dvc.lock.py", False),
    ("docs/dvc.md", False),
])
def test_written_by_dvc_names_only_the_lock_and_pointer_files(path, expected):
    assert written_by_dvc(path) is expected
