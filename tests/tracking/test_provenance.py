"""run_tags: the params, the data and the commit of what ran, wherever the run was started."""

from __future__ import annotations

import subprocess
from pathlib import Path

from metaembed.tracking.provenance import content_hash, folder_hash, run_tags


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
