"""`metaembed dashboard`: the storage it opens is the one `metaembed tune` writes, and a missing one is
an error that says how to make it (not a new empty file)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from metaembed.cli import build_parser
from metaembed.commands.dashboard import study_storage
from metaembed.tuning.params import TuneParams
from metaembed.tuning.study import open_storage


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def params(tmp_path):
    """The project's params.yaml with the study `groups` in artifacts/tune."""
    values = yaml.safe_load((REPO / "params.yaml").read_text())
    values["tune"] |= {"study_name": "groups", "out_dir": "artifacts/tune", "storage": None}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_a_missing_study_is_an_error_naming_the_tune_command(params, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no Optuna study at .*groups\.journal: run `metaembed tune"):
        study_storage(params, tmp_path)
    assert not (tmp_path / "artifacts").exists()


def test_the_dashboard_opens_the_journal_tune_writes_or_the_one_given(params, tmp_path):
    tune = TuneParams(study_name="groups", out_dir="artifacts/tune")
    optuna.create_study(storage=open_storage(tune, tmp_path), study_name="groups")
    url, storage = study_storage(params, tmp_path)
    assert url == str(tmp_path / "artifacts/tune/groups.journal")
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["groups"]
    other = tmp_path / "elsewhere.journal"
    with pytest.raises(FileNotFoundError, match="elsewhere.journal"):
        study_storage(params, tmp_path, str(other))


def test_the_command_binds_the_loopback_interface():
    from metaembed.commands import dashboard

    args = build_parser().parse_args(["dashboard", "--port", "8099"])
    assert (args.port, args.params, args._run) == (8099, "params.yaml", dashboard.run)
    assert dashboard.HOST == "127.0.0.1"
