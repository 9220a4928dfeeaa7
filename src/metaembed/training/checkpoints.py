"""Resumable checkpoints: pick the newest complete one, skip torn ones, never mix configurations.

Lightning writes checkpoints through an fsspec transaction, but a kill, a full disk or a copy
can still leave a file that does not load. Before resuming, each candidate is loaded with
`weights_only=True`; the newest one that loads and holds a training state wins, and every one
skipped is reported. A fingerprint of the run's configuration sits beside the checkpoints, so a
changed configuration starts afresh instead of resuming someone else's optimiser state.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import torch

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "run_fingerprint.json"
_STEP = re.compile(r"step=(\d+)\.ckpt$")


def checkpoint_filename() -> str:
    """The ModelCheckpoint `filename` pattern that `_STEP` parses back."""
    return "step={step:06d}"


def prepare_dir(directory: str | Path, fingerprint: dict) -> Path:
    """Keep the folder if it belongs to this configuration, else clear it (with a message)."""
    directory = Path(directory)
    marker = directory / FINGERPRINT_FILE
    if marker.is_file() and json.loads(marker.read_text()) != fingerprint:
        log.warning("%s: checkpoints belong to another configuration; starting afresh", directory)
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(fingerprint, indent=1, sort_keys=True) + "\n")
    return directory


def find_resumable(directory: str | Path) -> Path | None:
    """Newest checkpoint that loads completely, or None to start from step 0."""
    candidates = sorted(_steps(Path(directory)).items(), reverse=True)
    for _, path in candidates:
        problem = _problem(path)
        if problem is None:
            return path
        print(f"checkpoint {path} is incomplete ({problem}); falling back to the previous one")
    return None


def _steps(directory: Path) -> dict[int, Path]:
    if not directory.is_dir():
        return {}
    found = {}
    for path in directory.glob("*.ckpt"):
        match = _STEP.search(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def _problem(path: Path) -> str | None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any failure to load means we cannot resume from it
        return f"{type(error).__name__}: {str(error)[:120]}"
    missing = {"state_dict", "global_step", "optimizer_states", "loops"} - set(state)
    return f"missing {sorted(missing)}" if missing else None
