"""What a run was made from: git commit, params hash, data version, and flat params."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH
from pydantic import BaseModel

if TYPE_CHECKING:
    from metaembed.config import ParamsRoot

UNKNOWN = "unknown"
MISSING = "missing"
TRUNCATED = "...[truncated]"
# The metaembed package: the repository it sits in holds the code that runs, wherever the run starts.
CODE_ROOT = Path(__file__).resolve().parents[1]


def run_tags(
    project_root: str | Path = ".",
    params_path: str | Path | None = "params.yaml",
    dvc_file: str | Path = "data.dvc",
    sections: Sequence[str] | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    prepared: str | Path | None = None,
    code_root: str | Path | None = None,
) -> dict[str, str]:
    """Provenance tags for a run; relative paths are relative to `project_root`.

    `params_path` is the file the run was started with (its absolute path becomes `params.path`;
    None: the params were built in code).
    `params.hash` covers `params` when given (the validated values the run uses: a command-line
    override shows), else the file's `sections` (all without). With `prepared`, `data.hash` is the
    content of the data folder the run reads and `data.dvc_md5` what `dvc_file` pins; without, `data.hash`
    is the pin. `git.*` describe `code_root` (default `project_root`): pass CODE_ROOT for the code that runs.
    """
    root = Path(project_root)
    return (_git_tags(Path(code_root) if code_root is not None else root)
            | _params_tags(None if params_path is None else root / params_path, sections, params)
            | _data_tags(root / dvc_file, None if prepared is None else root / prepared))


def stage_tags(params: ParamsRoot, used: Mapping[str, Any], project_root: str | Path = ".") -> dict[str, str]:
    """The tags of a stage run from `params`: the file it was loaded from, the `used` values (as
    `ParamsRoot.used` gives them), the prepared data folder it reads and the code that runs it.
    Relative paths are taken from the working directory, where the command was started."""
    return run_tags(project_root, params_path=params.path.resolve(), params=used,
                    prepared=params.prepared_dir.resolve(), code_root=CODE_ROOT)


def prepared_tags(params: ParamsRoot, project_root: str | Path = ".") -> dict[str, str]:
    """The data tags alone of a stage run from `params` (see `stage_tags`): for a stage that logs onto
    another stage's run and only adds what it read."""
    return _data_tags(Path(project_root) / "data.dvc", params.prepared_dir.resolve())


def _git_tags(repo: Path) -> dict[str, str]:
    commit = _git(repo, "rev-parse", "HEAD")
    # Untracked files are ignored: stage outputs and the local MLflow store are usually
    # untracked and would otherwise mark every run dirty.
    status = _git(repo, "status", "--porcelain", "-z", "--untracked-files=no", strip=False) if commit else None
    dirty = None if status is None else any(not written_by_dvc(path) for path in _changed_paths(status))
    return {"git.commit": commit or UNKNOWN, "git.dirty": UNKNOWN if dirty is None else str(dirty).lower()}


def written_by_dvc(path: str) -> bool:
    """True for the files `dvc repro` and `dvc add` rewrite themselves: dvc.lock and *.dvc pointers.

    A pipeline rewrites dvc.lock after each stage, so counting it would make every later stage's
    run look as if it ran uncommitted code; the code and params it ran are checked all the same.
    """
    name = PurePosixPath(path).name
    return name == "dvc.lock" or (name.endswith(".dvc") and name != ".dvc")


def _changed_paths(status: str) -> list[str]:
    """The paths of `git status --porcelain -z`: "XY path", and a rename's or copy's source after it."""
    fields = status.split("\0")
    paths, index = [], 0
    while index < len(fields):
        entry = fields[index]
        index += 1
        if len(entry) < 4:
            continue  # the empty field after the last NUL
        paths.append(entry[3:])
        if {"R", "C"} & set(entry[:2]):  # both sides count: a file renamed to a .dvc name is a change
            paths.append(fields[index])
            index += 1
    return paths


def _params_tags(path: Path | None, sections: Sequence[str] | None, params: Mapping[str, Any] | None) -> dict[str, str]:
    if params is not None:
        digest = content_hash(params)
    else:
        digest = MISSING if path is None else params_hash(path, sections)
    return {"params.hash": digest, "params.path": UNKNOWN if path is None else str(path.resolve())}


def _data_tags(dvc_file: Path, prepared: Path | None) -> dict[str, str]:
    pinned = data_hash(dvc_file)
    if prepared is None:
        return {"data.hash": pinned}
    return {"data.hash": folder_hash(prepared), "data.path": str(prepared.resolve()), "data.dvc_md5": pinned}


def _git(root: Path, *args: str, strip: bool = True) -> str | None:
    """stdout of a git command in `root`, or None when git or the repository is not there.

    `strip=False` keeps porcelain output whole: its first column may be a space."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() if strip else done.stdout


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
    return content_hash(content)


def content_hash(content: Any) -> str:
    """sha256 of `content` dumped as sorted YAML: the same values give the same hash, whatever their order."""
    canonical = yaml.safe_dump(content, sort_keys=True, default_flow_style=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def folder_hash(folder: Path) -> str:
    """sha256 over a folder's relative file paths and contents in sorted order, or "missing"."""
    if not folder.is_dir():
        return MISSING
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


# Weight files above this size are fingerprinted by size and mtime instead of their bytes.
_BYTES_HASHED_UP_TO = 64 * 2**20


def model_fingerprint(model_dir: str | Path) -> str:
    """Changes whenever the saved model does: config and weights (large files by size and mtime)."""
    model_dir = Path(model_dir)
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(model_dir).as_posix().encode())
        stat = path.stat()
        if stat.st_size > _BYTES_HASHED_UP_TO:
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
        else:
            digest.update(path.read_bytes())
    return digest.hexdigest()


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
