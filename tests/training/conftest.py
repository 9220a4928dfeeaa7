"""Training in a subprocess, as a user runs it (DDP needs its own processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def train_cli():
    """`metaembed train --params <file>` run in `cwd`; returns the run's metrics.json."""

    def run(params: Path, cwd: Path) -> dict:
        result = subprocess.run([sys.executable, "-m", "metaembed.cli", "train", "--params", str(params)], cwd=cwd,
                                capture_output=True, text=True, timeout=400,
                                env=os.environ | {"MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"})
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return json.loads((cwd / "report" / "metrics.json").read_text())

    return run
