"""Make `data/raw` match what `data.dvc` pins: from the cache, from a remote, or by regenerating.

The synthetic data is a pure function of params.yaml `data:`, so a fresh clone without a reachable
DVC remote regenerates it and then checks the result against the pinned hashes: a mismatch means
the params (or the generator) changed since data.dvc was written, and the user is told so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

DVC_FILE = "data.dvc"


class DataSyncError(RuntimeError):
    """data/raw could not be brought in line with data.dvc; the message says what to do."""


@dataclass
class DvcRunner:
    """Runs the dvc command line of this interpreter's environment inside the repository."""

    repo: Path

    def __call__(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "dvc", *args]
        done = subprocess.run(command, cwd=self.repo, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise DataSyncError(f"`dvc {' '.join(args)}` failed in {self.repo}:\n{done.stderr.strip()}")
        return done


def pinned_path(repo: Path) -> str:
    path = repo / DVC_FILE
    if not path.is_file():
        raise DataSyncError(f"{path} not found: pin the data first with `metaembed data synth --pin`")
    outs = (yaml.safe_load(path.read_text()) or {}).get("outs") or []
    if len(outs) != 1 or "path" not in outs[0]:
        raise DataSyncError(f"{path}: expected exactly one entry under `outs:` with a `path`")
    return outs[0]["path"]


def is_in_sync(dvc: DvcRunner) -> bool:
    done = dvc("status", "--json", DVC_FILE)
    if done.returncode != 0:
        raise DataSyncError(f"`dvc status {DVC_FILE}` failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout or "{}") == {}


def has_remote(dvc: DvcRunner) -> bool:
    done = dvc("remote", "list")
    return done.returncode == 0 and bool(done.stdout.strip())


def ensure(repo: Path, regenerate: Callable[[], None], log: Callable[[str], None] = print) -> str:
    """Bring data/raw in line with data.dvc; returns how ("already", "cache", "remote", "regenerated")."""
    dvc = DvcRunner(repo)
    target = pinned_path(repo)
    if (repo / target).exists() and is_in_sync(dvc):
        log(f"{target} matches {DVC_FILE}")
        return "already"
    if dvc("checkout", DVC_FILE).returncode == 0 and is_in_sync(dvc):
        log(f"{target} restored from the local DVC cache")
        return "cache"
    if has_remote(dvc):
        pulled = dvc("pull", DVC_FILE)
        if pulled.returncode == 0 and is_in_sync(dvc):
            log(f"{target} pulled from the DVC remote")
            return "remote"
        log(f"dvc pull failed or gave other data ({pulled.stderr.strip().splitlines()[-1:] or ['?']}); regenerating")
    else:
        log("no DVC remote configured; regenerating the synthetic data")
    shutil.rmtree(repo / target, ignore_errors=True)
    regenerate()
    if not _matches_pin(repo, dvc):
        raise DataSyncError(
            f"the regenerated {target} differs from what {DVC_FILE} pins. If {DVC_FILE} pins real data, it "
            f"can only come from the DVC remote: check `dvc remote list` and `dvc pull {DVC_FILE}`. If it pins "
            f"synthetic data, the `data:` section of params.yaml (or the generator) changed since {DVC_FILE} was "
            f"written: restore it, or pin the new data with `metaembed data synth --pin` and commit {DVC_FILE}")
    return "regenerated"


def _matches_pin(repo: Path, dvc: DvcRunner) -> bool:
    """Hash the workspace by committing it to the cache, and compare with the pinned hash.

    `dvc status` cannot tell "other data" from "not cached yet" when the cache is empty, so the
    hash is recorded by `dvc commit` and data.dvc is put back as it was whatever the outcome.
    """
    path = repo / DVC_FILE
    before = path.read_text()
    try:
        dvc("commit", "--force", "--quiet", DVC_FILE, check=True)
        return _pinned_hash(path.read_text()) == _pinned_hash(before)
    finally:
        path.write_text(before)


def _pinned_hash(text: str) -> str | None:
    outs = (yaml.safe_load(text) or {}).get("outs") or [{}]
    return outs[0].get("md5")


def pin(repo: Path, target: str = "data/raw") -> None:
    """Record the current `target` in data.dvc (and the local cache), creating data.dvc if needed."""
    dvc = DvcRunner(repo)
    if (repo / DVC_FILE).is_file():
        dvc("commit", "--force", "--quiet", DVC_FILE, check=True)
        return
    dvc("add", "--quiet", target, check=True)
    # `dvc add` names its file after the target; the project keeps one data.dvc at the root.
    made = repo / f"{target}.dvc"
    spec = yaml.safe_load(made.read_text())
    spec["outs"][0]["path"] = target
    (repo / DVC_FILE).write_text(yaml.safe_dump(spec, sort_keys=False))
    made.unlink()
