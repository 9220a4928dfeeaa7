from __future__ import annotations

from pathlib import Path

import yaml

from metaembed.cli import main

REPO = Path(__file__).resolve().parents[2]


def write_params(path: Path, backbone: dict, model: dict, groups: list) -> Path:
    """The project's params.yaml (every section is required) with the demo's sections changed."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["backbone"].update(name_or_path="tiny", **backbone)
    params["model"].update(model)
    params["loss"]["groups"] = groups
    path.write_text(yaml.safe_dump(params))
    return path


def test_demo_prints_scores_at_every_budget_of_the_loss_groups(tmp_path, capsys):
    # The demo's model is untrained: it has no measured centering means to subtract.
    path = write_params(tmp_path / "params.yaml", {"cache_dir": str(tmp_path / "backbones")},
                        {"num_query_meta": 4, "num_candidate_meta": 8, "centering": False},
                        [[1, 1, 1.0], [2, 4, 1.0], [4, 8, 1.0]])
    assert main(["demo", "--params", str(path)]) == 0
    out = capsys.readouterr().out
    assert "queries (3, 4, 128), candidates (4, 8, 128)" in out
    for budget in ["(1, 1)", "(2, 4)", "(4, 8)"]:
        assert f"budget (r_q, r_c) = {budget}" in out
    assert "(16, 64)" not in out


def test_demo_rejects_groups_beyond_the_meta_tokens(tmp_path):
    import pytest

    from metaembed.config import ParamsError

    path = write_params(tmp_path / "params.yaml", {"cache_dir": str(tmp_path)},
                        {"num_query_meta": 2, "num_candidate_meta": 4}, [[1, 1, 1.0], [4, 8, 1.0]])
    with pytest.raises((ValueError, ParamsError), match="4"):
        main(["demo", "--params", str(path)])
