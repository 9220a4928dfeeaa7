import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from metaembed.tuning.report import best_changes, dvc_command, patch_text, summary_markdown

REPO = Path(__file__).resolve().parents[2]
CONFIG = {"groups": [[1, 2, 0.73219], [16, 64, 1.0]], "temperature": 0.0412345, "lr": 0.00123456}


@pytest.mark.skipif(shutil.which("git") is None, reason="git applies the patch")
def test_patch_applies_to_the_real_params_file_and_keeps_comments(tmp_path):
    original = (REPO / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(original)
    patch = tmp_path / "best.patch"
    patch.write_text(patch_text(original, best_changes(CONFIG)))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "apply", str(patch)], cwd=tmp_path, check=True)
    patched = (tmp_path / "params.yaml").read_text()
    params = yaml.safe_load(patched)
    assert params["loss"]["groups"] == [[1, 2, 0.7322], [16, 64, 1.0]]
    assert params["loss"]["temperature"] == 0.04123 and params["train"]["lr"] == 0.00123
    # Only the three lines change; the temperature line keeps its comment; other sections untouched.
    changed = [line for line in patch.read_text().splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert len(changed) == 3
    assert "# paper: 0.03" in next(line for line in changed if "temperature" in line)
    assert params["evaluate"] == yaml.safe_load(original)["evaluate"]


def test_missing_key_is_named():
    with pytest.raises(ValueError, match="loss.temperature"):
        patch_text("loss:\n  groups: [[1, 1, 1.0]]\ntrain:\n  lr: 0.001\n", best_changes(CONFIG))


def test_dvc_command_sets_each_key():
    command = dvc_command(best_changes(CONFIG))
    assert command.startswith("dvc exp run ")
    assert "--set-param 'loss.groups=[[1, 2, 0.7322], [16, 64, 1.0]]'" in command
    assert "--set-param 'train.lr=0.00123'" in command


def test_block_style_values_become_one_line(tmp_path):
    text = yaml.safe_dump({"loss": {"groups": [[1, 1, 1.0], [4, 8, 1.0]], "temperature": 0.05, "mmr": True},
                           "train": {"lr": 0.001, "max_steps": 4}}, sort_keys=False)
    (tmp_path / "params.yaml").write_text(text)
    (tmp_path / "p.patch").write_text(patch_text(text, best_changes(CONFIG)))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "apply", "p.patch"], cwd=tmp_path, check=True)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert params == {"loss": {"groups": [[1, 2, 0.7322], [16, 64, 1.0]], "temperature": 0.04123, "mmr": True},
                      "train": {"lr": 0.00123, "max_steps": 4}}


def test_summary_markdown_lists_trials_and_how_to_apply():
    summary = {"study": "s", "mode": "single", "storage": "x.journal", "states": {"COMPLETE": 1, "PRUNED": 1},
               "parent_run_id": "abc", "dvc_exp_run": "dvc exp run --set-param 'train.lr=0.001'",
               "patch": "artifacts/tune/s/best_params.patch",
               "trials": [{"number": 0, "source": "params.yaml", "state": "COMPLETE", "values": [0.25],
                           "config": {"groups": [[1, 1, 1.0], [16, 64, 1.0]], "temperature": 0.05, "lr": 1e-3}},
                          {"number": 1, "source": "sampled", "state": "PRUNED", "values": None,
                           "config": {"groups": [[16, 64, 1.0]], "temperature": 0.03, "lr": 2e-3}}],
               "best": {"number": 0}}
    text = summary_markdown(summary)
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]
    assert ["0", "params.yaml", "COMPLETE", "0.2500", "[[1, 1, 1.0], [16, 64, 1.0]]", "0.05", "0.001"] in rows
    assert ["1", "sampled", "PRUNED", "-"] == next(r for r in rows if r[0] == "1")[:4]
    assert "git apply artifacts/tune/s/best_params.patch" in text
