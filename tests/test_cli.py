from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from metaembed.cli import COMMANDS, build_parser, main


def test_every_command_is_reachable_with_help(capsys):
    parser = build_parser()
    for words, _, help_text in COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([*words, "--help"])
        assert exit_info.value.code == 0
        assert help_text.split()[0] in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_a_params_error_is_one_clear_line_not_a_traceback(tmp_path, capsys):
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    del params["loss"]
    side = tmp_path / "side.yaml"
    side.write_text(yaml.safe_dump(params))
    assert main(["train", "--params", str(side)]) == 2
    err = capsys.readouterr().err
    assert str(side) in err and "loss" in err


def test_a_command_line_override_is_validated_like_the_file(tmp_path, monkeypatch, capsys):
    """--max-steps below train.warmup_steps (30) is refused before any work, naming the key."""
    monkeypatch.chdir(tmp_path)  # a regression would start training here, on no data, not in the repo
    (tmp_path / "params.yaml").write_text((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    assert main(["train", "--max-steps", "10"]) == 2
    assert "warmup_steps" in capsys.readouterr().err
