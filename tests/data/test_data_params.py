from pathlib import Path

import pytest
import yaml

from metaembed.config import ParamsError, load_section, section
from metaembed.data.params import PrepareParams
from metaembed.synth.params import DataParams

REPO = Path(__file__).resolve().parents[2]


def test_params_yaml_sections_validate(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())  # every section is required
    params["data"]["seed"], params["prepare"]["on_bad_rows"] = 3, "quarantine"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert load_section("data", DataParams, path).seed == 3
    assert load_section("prepare", PrepareParams, path).on_bad_rows == "quarantine"


@pytest.mark.parametrize("values, key", [
    ({"scenes": {"colours": ["red", "mauve"]}}, "data.scenes"),
    ({"scenes": {"min_objects": 8, "max_objects": 5}}, "data.scenes"),
    ({"eval": {"candidates": 1}}, "data.eval.candidates"),
    ({"train": {"subsets": ["Nope"]}}, "data.train"),
    ({"colour": 1}, "data.colour"),
])
def test_bad_data_values_name_their_key(values, key):
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        section({"data": values}, "data", DataParams)


def test_bad_prepare_values_name_their_key():
    with pytest.raises(ParamsError, match=r"prepare\.on_bad_rows"):
        section({"prepare": {"on_bad_rows": "skip"}}, "prepare", PrepareParams)
    with pytest.raises(ParamsError, match="must increase and end at 1.0"):
        section({"prepare": {"curriculum": [{"until": 0.5, "levels": {}}]}}, "prepare", PrepareParams)
