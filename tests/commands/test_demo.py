from __future__ import annotations

import yaml

from metaembed.cli import main


def test_demo_prints_scores_at_every_budget_of_the_loss_groups(tmp_path, capsys):
    params = {
        "backbone": {"cache_dir": str(tmp_path / "backbones")},
        "model": {"num_query_meta": 4, "num_candidate_meta": 8},
        "loss": {"groups": [[1, 1, 1.0], [2, 4, 1.0], [4, 8, 1.0]]},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert main(["demo", "--params", str(path)]) == 0
    out = capsys.readouterr().out
    assert "queries (3, 4, 128), candidates (4, 8, 128)" in out
    for budget in ["(1, 1)", "(2, 4)", "(4, 8)"]:
        assert f"budget (r_q, r_c) = {budget}" in out
    assert "(16, 64)" not in out


def test_demo_rejects_groups_beyond_the_meta_tokens(tmp_path):
    import pytest

    from metaembed.config import ParamsError

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"model": {"num_query_meta": 2, "num_candidate_meta": 4},
                                    "loss": {"groups": [[1, 1, 1.0], [4, 8, 1.0]]},
                                    "backbone": {"cache_dir": str(tmp_path)}}))
    with pytest.raises((ValueError, ParamsError), match="4"):
        main(["demo", "--params", str(path)])
