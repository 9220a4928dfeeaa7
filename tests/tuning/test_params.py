from pathlib import Path

import pytest
import yaml

from metaembed.cli import build_parser
from metaembed.config import ParamsError, section
from metaembed.model import ModelParams
from metaembed.training.params import LossParams, TrainParams
from metaembed.tuning import space
from metaembed.tuning.params import TuneParams

REPO = Path(__file__).resolve().parents[2]


def test_project_tune_section_is_valid_and_holds_the_current_configuration():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    tune = section(params, "tune", TuneParams)
    model = section(params, "model", ModelParams)
    ladder = space.ladders(tune.space, model.num_query_meta, model.num_candidate_meta)
    loss, train = section(params, "loss", LossParams), section(params, "train", TrainParams)
    # The baseline trial (params.yaml's own groups) must lie in the space, or it is not enqueued.
    assert space.encode(loss.groups, loss.temperature, train.lr, tune.space, ladder) is not None
    assert tune.storage_url("/p") == "/p/artifacts/tune/metaembed-groups.journal"


@pytest.mark.parametrize(("tune", "message"), [
    ({"quality_metric": "accuracy"}, "tune.quality_metric"),
    ({"train": {"lr": 0.1}}, "set per trial"),
    ({"mode": "both"}, "tune.mode"),
    ({"budgets": [[1, 1], [1, 1]]}, "listed twice"),
])
def test_bad_tune_values_name_the_key(tune, message):
    with pytest.raises(ParamsError, match=message):
        section({"tune": tune}, "tune", TuneParams, "params.yaml")


def test_tune_command_is_registered():
    args = build_parser().parse_args(["tune", "--trials", "3", "--worker", "1", "--mode", "multi"])
    assert (args.trials, args.worker, args.mode, args.storage) == (3, 1, "multi", None)
