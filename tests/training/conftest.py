"""Training in a subprocess, as a user runs it (DDP needs its own processes), and comparing two\ntrainings' models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def _start(params: Path, cwd: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "metaembed.cli", "train", "--params", str(params)], cwd=cwd,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=os.environ | {"MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"} | env)


@pytest.fixture
def start_training():
    """Start `metaembed train --params <file>` in `cwd` with extra environment variables (a
    cluster launcher's NODE_RANK, MASTER_PORT, ...); returns the process (output in its stdout)."""
    return _start


@pytest.fixture
def train_cli():
    """`metaembed train --params <file>` run to its end in `cwd`; returns the run's metrics.json."""

    def run(params: Path, cwd: Path) -> dict:
        process = _start(params, cwd)
        output, _ = process.communicate(timeout=400)
        assert process.returncode == 0, output[-6000:]
        return json.loads((cwd / "report" / "metrics.json").read_text())

    return run


def assert_same_model(a_dir: Path, b_dir: Path, differing_at_most: float = 1e-3) -> None:
    """Two trainings' saved models agree up to float32 summation order.

    Gradients agree to ~1e-9. Adam divides by sqrt(v), so an element whose true gradient is zero
    (e.g. attention key biases, which softmax ignores) can move by a fraction of lr on noise alone:
    a loose bound per element, a tight one overall.
    """
    from safetensors.torch import load_file

    differing = total = 0
    for part in ["metaembed_head.safetensors", "backbone/model.safetensors"]:
        a, b = load_file(a_dir / "model" / part), load_file(b_dir / "model" / part)
        assert a.keys() == b.keys()
        for name in a:
            torch.testing.assert_close(b[name], a[name], rtol=1e-3, atol=1e-4, msg=name)
            differing += int((b[name] - a[name]).abs().gt(1e-6).sum())
            total += a[name].numel()
    assert differing / total < differing_at_most, f"{differing} of {total} weights differ by more than 1e-6"


@pytest.fixture
def same_model():
    return assert_same_model
