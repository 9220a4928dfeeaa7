"""What a run was made from: git commit, params hash, data version, and flat params."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH
from pydantic import BaseModel

UNKNOWN = "unknown"
MISSING = "missing"
TRUNCATED = "...[truncated]"


def run_tags(
    project_root: str | Path = ".",
    params_path: str | Path = "params.yaml",
    dvc_file: str | Path = "data.dvc",
    sections: Sequence[str] | None = None,
) -> dict[str, str]:
    """Provenance tags for a run; paths are relative to `project_root`.

    `sections` restricts `params.hash` to those params.yaml sections, so a stage's hash only
    changes when its own knobs do.
    """
    root = Path(project_root)
    commit = _git(root, "rev-parse", "HEAD")
    # Untracked files are ignored: stage outputs and the local MLflow store are usually
    # untracked and would otherwise mark every run dirty.
    status = _git(root, "status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "git.commit": commit or UNKNOWN,
        "git.dirty": UNKNOWN if status is None else str(bool(status)).lower(),
        "params.hash": params_hash(root / params_path, sections),
        "data.hash": data_hash(root / dvc_file),
    }


def _git(root: Path, *args: str) -> str | None:
    """stdout of a git command in `root`, or None when git or the repository is not there."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def params_hash(path: Path, sections: Sequence[str] | None = None) -> str:
    """sha256 of the params file's content re-dumped as sorted YAML (comments and layout don't count)."""
    if not path.is_file():
        return MISSING
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error}); fix the file before tracking a run") from None
    if sections is not None:
        if not isinstance(content, dict):
            raise ValueError(f"{path}: expected a mapping of sections to select {list(sections)} from")
        content = {name: content.get(name) for name in sections}
    canonical = yaml.safe_dump(content, sort_keys=True, default_flow_style=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def data_hash(dvc_file: Path) -> str:
    """The md5 DVC recorded for the first output of a .dvc file, or "missing" without the file."""
    if not dvc_file.is_file():
        return MISSING
    meta = yaml.safe_load(dvc_file.read_text())
    try:
        return str(meta["outs"][0]["md5"])
    except (TypeError, KeyError, IndexError):
        raise ValueError(
            f"{dvc_file}: no outs[0].md5 recorded; re-create it with `dvc add <data folder>`"
        ) from None


def flatten_params(
    nested: Mapping[str, Any] | BaseModel, prefix: str = "", max_length: int = MAX_PARAM_VAL_LENGTH
) -> dict[str, str]:
    """`{"train": {"lr": 1e-4}}` -> `{"train.lr": "0.0001"}`, values cut to MLflow's limit.

    Non-string values are written as JSON so lists of lists read as in params.yaml and
    booleans/None read `true`/`null`; a cut value ends with a visible marker.
    """
    if isinstance(nested, BaseModel):
        nested = nested.model_dump()
    flat: dict[str, str] = {}
    for key, value in nested.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, BaseModel):
            value = value.model_dump()
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, name, max_length))
        else:
            flat[name] = _truncate(_stringify(value), max_length)
    return flat


def _stringify(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _truncate(text: str, max_length: int) -> str:
    if len(text) <= max_length:
        return text
    return text[: max_length - len(TRUNCATED)] + TRUNCATED
