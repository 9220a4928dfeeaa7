"""params.yaml as one strict root: every section required, nothing unknown, types checked, errors that
name the file, the key and the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from metaembed.config import (ParamsError, apply_overrides, load_params, load_root, parse_override, section,
                             section_models)
from metaembed.training.params import LossParams

REPO = Path(__file__).resolve().parents[1]


def project_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def write(tmp_path: Path, params: dict, name: str = "side.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_the_project_params_file_validates_as_a_whole_and_knows_its_path():
    root = load_root(REPO / "params.yaml")
    assert root.path == REPO / "params.yaml"
    assert root.loss.temperature == project_params()["loss"]["temperature"]
    assert section(root, "loss", LossParams) is root.loss


def test_a_missing_section_stops_instead_of_taking_code_defaults(tmp_path, capsys):
    from metaembed.cli import main

    params = project_params()
    del params["loss"]
    path = write(tmp_path, params)
    # Before: the training took LossParams' defaults (temperature 0.03, offset_penalty 0) silently.
    with pytest.raises(ParamsError, match=r"side\.yaml: loss: section missing: add `loss:`"):
        load_params(path)
    assert main(["train", "--params", str(path)]) == 2
    assert re.search(r"side\.yaml: loss: section missing", capsys.readouterr().err)


def test_a_section_passed_as_a_dict_must_be_there():
    with pytest.raises(ParamsError, match="p.yaml: loss: section missing"):
        section({"train": {}}, "loss", LossParams, "p.yaml")


def test_an_empty_section_asks_for_an_explicit_mapping(tmp_path):
    params = project_params()
    params["loss"] = None
    with pytest.raises(ParamsError, match=r"loss: section is empty: write `loss: \{\}`"):
        load_root(write(tmp_path, params))


def test_an_unknown_section_is_named_with_the_known_ones(tmp_path):
    params = project_params() | {"losss": {"temperature": 0.05}}
    with pytest.raises(ParamsError, match=r"side\.yaml: losss: unknown section: remove it or correct its name "
                                          r"\(did you mean `loss`\?\) \(sections: backbone, pretrain, model, loss"):
        load_params(write(tmp_path, params))


def test_an_unknown_key_is_named_with_the_keys_of_its_section(tmp_path):
    params = project_params()
    params["sweep"]["latency"]["repeat"] = 3
    with pytest.raises(ParamsError, match=r"sweep\.latency\.repeat: unknown key: .*\(did you mean `repeats`\?\) "
                                          r"\(latency takes candidates, "
                                          r"query_batch, dtype, repeats"):
        load_root(write(tmp_path, params))


@pytest.mark.parametrize(("key", "value", "message"), [
    ("lr", "fast", r"train\.lr: Input should be a valid number.* \(value: 'fast'\)"),
    ("max_steps", 1.5, r"train\.max_steps: Input should be a valid integer, got a number with a fractional part \(value: 1\.5\)"),
    ("betas", "0.9", r"train\.betas: Input should be a valid tuple"),
])
def test_a_wrong_type_names_the_key_and_the_value(tmp_path, key, value, message):
    params = project_params()
    params["train"][key] = value
    with pytest.raises(ParamsError, match=message):
        load_root(write(tmp_path, params))


def test_a_number_yaml_reads_as_a_string_still_counts(tmp_path):
    # PyYAML (YAML 1.1) reads `1e-4` without a dot as a string: lax string->number coercion keeps it a number.
    text = (REPO / "params.yaml").read_text().replace("lr: 7.0e-4", "lr: 1e-4")
    assert "lr: 1e-4" in text and yaml.safe_load(text)["train"]["lr"] == "1e-4"
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert load_root(path).train.lr == pytest.approx(1e-4)


def test_every_section_model_forbids_unknown_keys():
    from metaembed.config import ParamsRoot, section_models

    def strict(model: type[BaseModel], where: str) -> list[str]:
        found = [] if model.model_config.get("extra") == "forbid" else [where]
        for name, field in model.model_fields.items():
            for inner in _models_in(field.annotation):
                found += strict(inner, f"{where}.{name}")
        return found

    models = section_models()
    assert list(models) == list(ParamsRoot.model_fields) == list(project_params())
    assert sum((strict(model, name) for name, model in models.items()), []) == []


def _models_in(annotation) -> list[type[BaseModel]]:
    from typing import get_args

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def test_a_file_that_is_not_yaml_names_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match=r"params\.yaml: not valid YAML"):
        load_params(path)


def test_overrides_set_dotted_keys_on_a_copy_and_are_validated_on_load(tmp_path):
    base = project_params()
    key, value = parse_override("train.max_steps=4")
    out = apply_overrides(base, {key: value, "model.lora.r": 8})
    assert (out["train"]["max_steps"], out["model"]["lora"]["r"]) == (4, 8)
    assert base["train"]["max_steps"] == 300
    with pytest.raises(ParamsError, match="override train.seed.x: seed is a value"):
        apply_overrides(base, {"train.seed.x": 1})
    with pytest.raises(ParamsError, match="SECTION.KEY=VALUE"):
        parse_override("max_steps=4")
    # A misspelt override becomes an unknown key, which the root refuses.
    with pytest.raises(ParamsError, match=r"train\.max_step: unknown key"):
        load_root(write(tmp_path, apply_overrides(base, {"train.max_step": 4})))


@pytest.mark.parametrize("key", ["evaluate.model_dir", "evaluate.train_report", "registry.budgets_file",
                                 "prepare.raw_dir"])
def test_a_path_another_stage_owns_is_not_a_key_of_its_reader(tmp_path, key):
    # Written twice, the two could point at different folders; the reader derives it instead.
    path = write(tmp_path, apply_overrides(project_params(), {key: "x"}))
    with pytest.raises(ParamsError, match=rf"side\.yaml: {re.escape(key)}: unknown key"):
        load_root(path)


def test_derived_paths_follow_the_key_of_the_stage_that_writes_them():
    root = load_root(REPO / "params.yaml", {"data.out_dir": "d", "prepare.out_dir": "p", "train.output_dir": "x",
                                            "train.report_dir": "r", "sweep.out_dir": "s"})
    assert (root.raw_dir, root.prepared_dir, root.model_dir) == (Path("d"), Path("p"), Path("x"))
    assert (root.train_report_path, root.budgets_path) == (Path("r/metrics.json"), Path("s/budgets.json"))


def test_used_sections_are_the_validated_values_as_plain_data():
    root = load_root(REPO / "params.yaml", {"train.lr": "1e-4"})
    root.train = root.train.model_copy(update={"max_steps": 3})  # a change after loading counts too
    used = root.used("loss", "train", "backbone", exclude={"backbone": {"name_or_path"}})
    assert list(used) == ["loss", "train", "backbone"]
    assert used["train"]["lr"] == pytest.approx(1e-4) and used["train"]["max_steps"] == 3
    assert used["loss"]["groups"][0] == [1, 1, 0.5]  # JSON types: tuples are lists
    assert "name_or_path" not in used["backbone"] and used["backbone"]["torch_dtype"] == "float32"


def test_a_partial_file_names_every_missing_section_once(tmp_path):
    with pytest.raises(ParamsError) as raised:
        load_root(write(tmp_path, {"data": {"seed": 3}, "prepare": {}}))
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'side.yaml'}: backbone, pretrain, model, loss, tracking, train, ")
    assert "sections missing: add them" in message and message.count("missing") == 1


RECIPE_KEYS = {"loss": None, "train": ("max_steps", "lr", "warmup_steps", "batch_size", "sub_batch_size"),
               "pretrain": ("max_steps", "lr", "warmup_steps", "batch_size")}


def test_a_recipe_key_left_out_means_the_value_params_yaml_documents():
    """Deleting a recipe key must not switch to another recipe silently (loss: every key)."""
    project = yaml.safe_load((REPO / "params.yaml").read_text())
    models = section_models()
    for name, keys in RECIPE_KEYS.items():
        defaults = models[name]().model_dump(mode="json")
        for key in keys or project[name]:
            assert defaults[key] == project[name][key], f"{name}.{key}: code default {defaults[key]!r}"
