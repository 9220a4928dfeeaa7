"""scripts/long_run.py: the plain-loop long run used on lent GPU machines (docs/learnability.md)."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_long_run_trains_and_evaluates_at_the_asked_steps(tmp_path, write_params):
    params = write_params({"evaluate.budgets": [[1, 1], [4, 8]]})
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PARAMS": str(params), "STEPS": "2", "EVAL_AT": "1,2",
           "NEVAL": "2", "WORKERS": "0", "OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "long_run.py")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "long.json").read_text())
    assert [result["step"] for result in report["results"]] == [1, 2]
    means = report["results"][-1]["mean"]
    assert set(means) == {"1x1", "4x8"}
    # [P@1, twin accuracy, non-twin P@1] in %, each a mean over the subsets.
    assert all(len(row) == 3 and 0.0 <= value <= 100.0 for row in means.values() for value in row)
