from __future__ import annotations

import pytest

from metaembed.cli import COMMANDS, build_parser


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
