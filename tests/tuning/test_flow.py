"""flows/tune.py's own logic (the flow itself was run by hand: see docs/tuning.md)."""

import importlib.util
import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))  # before prefect loads


@pytest.fixture(scope="module")
def flow_module():
    spec = importlib.util.spec_from_file_location("tune_flow", REPO / "flows" / "tune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_split_trials_is_even_and_loses_none(flow_module):
    assert flow_module.split_trials(6, 2) == [3, 3]
    assert flow_module.split_trials(7, 3) == [3, 2, 2]
    assert flow_module.split_trials(2, 4) == [1, 1]
    with pytest.raises(ValueError, match="trials >= 1"):
        flow_module.split_trials(0, 2)


def test_worker_command_names_the_worker_and_storage(flow_module):
    command = flow_module._command("p.yaml", 3, 1, "sqlite:///o.db")
    assert command[1:] == ["-m", "metaembed.cli", "tune", "--params", "p.yaml", "--trials", "3", "--worker", "1",
                           "--storage", "sqlite:///o.db"]
