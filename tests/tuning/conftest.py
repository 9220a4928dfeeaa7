"""A params file whose tune: section runs a trial in seconds (on the shared prepared benchmark)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

TINY_TUNE = {
    "eval_queries_per_subset": 3,
    "budgets": [[1, 1], [2, 4], [4, 8]],
    "pruning": {"enabled": False},
    "train": {"max_steps": 2, "val_every_n_steps": 2, "checkpoint_every_n_steps": 2, "calibration_batches": 2},
    "space": {"num_groups": [1, 3]},
}


@pytest.fixture
def tune_params(write_params):
    """write(tune overrides) -> params.yaml with model R_q=4, R_c=8 and a tiny tune: section."""

    def write(**tune) -> Path:
        path = write_params({"evaluate.batch_size": 16})
        params = yaml.safe_load(path.read_text())
        params["tune"] = {**params.get("tune", {}), **TINY_TUNE, "out_dir": str(path.parent / "tune"), **tune}
        path.write_text(yaml.safe_dump(params, sort_keys=False))
        return path

    return write
