from __future__ import annotations

import ast
import graphlib
import json
import re
from pathlib import Path

import mlflow
import pytest
import yaml

from metaembed.registry.gate import promote
from metaembed.registry.names import BUDGETS_TAG, INDEX_LATENCY_TAG, SHA_TAG, TRAIN_RUN_TAG
from metaembed.registry.params import PromotionParams
from metaembed.registry.digest import folder_sha256
from metaembed.registry.register import register
from metaembed.stage_outputs import IndexLatency, StageOutputError, SweepBudgets, TrainReport


def test_a_trained_model_becomes_a_version_with_provenance_and_the_challenger_alias(project):
    run_id = project.train(0, quality=0.5)
    registration = register(project.params_path, project.root)

    assert (registration.created, registration.version, registration.train_run_id) == (True, "1", run_id)
    version = project.client().get_model_version(project.model_name, "1")
    assert version.run_id == run_id
    tags = version.tags
    assert tags[SHA_TAG] == folder_sha256(project.root / "artifacts" / "model")
    assert tags[TRAIN_RUN_TAG] == run_id
    assert (tags["git.commit"], tags["params.hash"], tags["data.hash"]) == ("c0ffee", "p" * 8, "d" * 8)
    table = json.loads(tags[BUDGETS_TAG])
    assert [row["name"] for row in table["budgets"]] == ["1x1", "4x8"]
    assert table["budgets"][1]["quality"]["mmeb_p_at_1"] == 0.5
    assert re.search(r"\|\s*4x8\s*\|\s*0\.5000\s*\|", version.description)
    assert project.aliases() == {"challenger": "1"}


def test_the_registered_model_is_code_plus_safetensors_with_budget_and_side_params(project):
    project.train(0, quality=0.5)
    registration = register(project.params_path, project.root)

    info = mlflow.models.get_model_info(registration.uri)
    flavor = info.flavors["python_function"]
    assert flavor["model_code_path"].endswith("pyfunc_model.py")  # "models from code"
    params = {spec.name: (spec.dtype.name, spec.default) for spec in info.signature.params}
    assert params["side"] == ("string", "query") and params["budget"] == ("long", 0)
    assert [spec.name for spec in info.signature.inputs] == ["text", "image"]
    assert info.signature.outputs.inputs[0].shape == (-1, -1, 128)
    local = mlflow.artifacts.download_artifacts(registration.uri)
    files = {path.name for path in __import__("pathlib").Path(local).rglob("*") if path.is_file()}
    assert "metaembed_head.safetensors" in files and "model.safetensors" in files
    assert not {name for name in files if name.endswith((".pkl", ".pt", ".bin"))}  # nothing pickled
    requirements = (__import__("pathlib").Path(local) / "requirements.txt").read_text()
    assert "torch==" in requirements and "metaembed==" in requirements


def test_rerunning_with_nothing_changed_registers_nothing_new(project):
    project.train(0, quality=0.5)
    first = register(project.params_path, project.root)
    again = register(project.params_path, project.root)
    # A new training run that saved byte-identical weights is still the same model.
    project.train(0, quality=0.5)
    retrained = register(project.params_path, project.root)

    assert (again.created, again.version) == (False, first.version)
    assert (retrained.created, retrained.version) == (False, first.version)
    assert project.versions() == ["1"]


def test_a_different_model_is_a_new_version_and_takes_the_challenger_alias(project):
    project.train(0, quality=0.5)
    register(project.params_path, project.root)
    project.train(1, quality=0.6)
    second = register(project.params_path, project.root)

    assert (second.created, second.version) == (True, "2")
    assert project.versions() == ["1", "2"]
    assert project.aliases() == {"challenger": "2"}


def test_a_re_evaluated_model_keeps_its_version_and_shows_the_new_table(project):
    project.train(0, quality=0.5)
    register(project.params_path, project.root)
    project.write_budgets(0.55)  # the sweep re-ran on the same model
    again = register(project.params_path, project.root)

    assert not again.created
    tags = project.client().get_model_version(project.model_name, again.version).tags
    assert json.loads(tags[BUDGETS_TAG])["budgets"][1]["quality"]["mmeb_p_at_1"] == 0.55


def test_missing_or_bad_stage_outputs_are_named(project):
    project.train(0, quality=0.5)
    budgets = project.root / "artifacts" / "sweep" / "budgets.json"
    content = json.loads(budgets.read_text())
    content["budgets"][1]["quality"]["mmeb_p_at_1"] = 55.0  # a percentage, not a fraction
    budgets.write_text(json.dumps(content))
    with pytest.raises(StageOutputError, match=r"budgets\.json: budgets\.1\.quality: .*not a fraction"):
        register(project.params_path, project.root)

    budgets.unlink()
    with pytest.raises(StageOutputError, match=r"budgets\.json not found: .*sweep"):
        register(project.params_path, project.root)
    assert not project.client().search_registered_models(f"name = '{project.model_name}'")


def test_a_training_run_missing_from_the_store_is_an_error(project):
    project.train(0, quality=0.5)
    missing = "0" * 32
    TrainReport(mlflow_run_id=missing).write(project.root / "artifacts" / "train" / "metrics.json")
    project.write_budgets(0.5, run_id=missing)
    with pytest.raises(StageOutputError, match="training run 0+ .* is not in"):
        register(project.params_path, project.root)


def test_registry_params_are_validated(project):
    from metaembed.config import ParamsError, load_section
    from metaembed.registry.params import PromotionParams

    params = yaml.safe_load(project.params_path.read_text())
    params["promotion"] |= {"budget": [16, 64], "index_dtype": "bfloat16"}  # the keys before served_budget
    project.params_path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=r"promotion\.budget: unknown key: .*\(did you mean `served_budget`\?\).*"
                                          r"promotion\.index_dtype: unknown key"):
        load_section("promotion", PromotionParams, project.params_path)


def test_a_sweep_older_than_the_trained_model_is_refused(project):
    # The model was retrained, but evaluate and sweep did not re-run: budgets.json measured the old one.
    old_run = project.train(0, quality=0.5)
    project.train(1, quality=0.6)
    project.write_budgets(0.5, run_id=old_run)
    with pytest.raises(StageOutputError, match=f"budgets.json measured training run {old_run}, but the train "
                                               f"stage's report names run {project.train_run_id}: .*re-run "
                                               "evaluate and sweep"):
        register(project.params_path, project.root)

    project.sweep.write(project.root / "artifacts" / "sweep" / "budgets.json")  # as `sweep --no-mlflow` writes it
    with pytest.raises(StageOutputError, match="mlflow_run_id is null .* re-run the sweep with MLflow"):
        register(project.params_path, project.root)
    assert not project.client().search_registered_models(f"name = '{project.model_name}'")


def test_a_sweep_without_vidore_sets_is_registered_and_judged(project):
    # The sweep writes null for a metric whose sets the suite lacks (here: no ViDoRe pages).
    project.train(0, quality=0.5)
    budgets = project.root / "artifacts" / "sweep" / "budgets.json"
    table = SweepBudgets.read(budgets)
    rows = [row.model_copy(update={"quality": row.quality | {"vidore_ndcg_at_5": None}}) for row in table.budgets]
    table.model_copy(update={"budgets": rows}).write(budgets)

    version = register(project.params_path, project.root).version
    tagged = SweepBudgets.parse(project.client().get_model_version(project.model_name, version).tags[BUDGETS_TAG],
                                BUDGETS_TAG)
    assert tagged.row((4, 8)).quality == {"mmeb_p_at_1": 0.5, "vidore_ndcg_at_5": None}
    decision = promote(project.client(), project.model_name, PromotionParams(max_index_bytes_per_candidate=4096))
    assert (decision.promote, decision.budget) == (True, "4x8")


def test_the_index_stage_output_is_stored_on_the_version_and_its_index_linked(project):
    from metaembed.registry.indexes import linked_indexes

    project.train(0, quality=0.5, index_ms=2.5)
    registration = register(project.params_path, project.root)

    tags = project.client().get_model_version(project.model_name, registration.version).tags
    stored = IndexLatency.parse(tags[INDEX_LATENCY_TAG], INDEX_LATENCY_TAG)
    assert stored == registration.index_latency and stored.row("4x8").two_stage_ms == 2.5
    [(key, link)] = linked_indexes(project.client(), project.model_name, registration.version).items()
    assert key == registration.index_tag
    assert (link["manifest_sha256"], link["candidates"]) == (stored.index.manifest_sha256, str(stored.index.candidates))
    description = project.client().get_model_version(project.model_name, registration.version).description
    assert f"ms/query two-stage @ {stored.index.candidates}" in description


def test_index_stage_output_of_another_model_or_index_is_refused(project):
    project.train(0, quality=0.5, index_ms=2.5)
    latency = project.root / "artifacts" / "index" / "latency.json"
    project.write_index(2.5, model_sha256="0" * 64)  # timed before the model was retrained
    with pytest.raises(StageOutputError, match=r"latency\.json timed an index of the model with sha256 000000000000"
                                               r"\.\.\., but the trained model hashes to .* re-run the index stage "
                                               r"\(`dvc repro index`\), or delete .*latency\.json"):
        register(project.params_path, project.root)

    project.write_index(2.5)
    (project.root / "artifacts" / "index" / "index" / "manifest.json").write_text("{}")  # rebuilt since it was timed
    with pytest.raises(StageOutputError, match=r"manifest\.json is not the index it timed"):
        register(project.params_path, project.root)

    latency.unlink()  # no index stage: registered without measured latency, nothing linked
    registration = register(project.params_path, project.root)
    assert registration.index_latency is None and registration.index_tag is None
    assert INDEX_LATENCY_TAG not in project.client().get_model_version(project.model_name, "1").tags


def test_the_train_report_is_read_with_its_contract(project):
    project.train(0, quality=0.5)
    report = project.root / "artifacts" / "train" / "metrics.json"
    report.write_text(json.dumps({"run_id": project.train_run_id}))  # not what the train stage writes
    with pytest.raises(StageOutputError, match=r"metrics\.json: mlflow_run_id: Field required; run_id: Extra "
                                               r"inputs are not permitted; re-run the train stage"):
        register(project.params_path, project.root)


def registry_imports() -> dict[str, set[str]]:
    """registry module -> the registry modules it imports (type-hint-only imports included)."""
    folder = Path(__file__).resolve().parents[2] / "src" / "metaembed" / "registry"
    graph = {}
    for path in folder.glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            imported |= {name.rpartition(".")[2] for name in names if name.startswith("metaembed.registry.")}
        graph[path.stem] = imported
    return graph


def test_the_registry_modules_import_in_one_direction():
    graph = registry_imports()
    order = list(graphlib.TopologicalSorter(graph).static_order())  # CycleError names a cycle
    assert graph["names"] == set()  # aliases, tags and artifact keys: one place, importable by all
    assert len(order) == len(graph)

    def reaches(module: str) -> set[str]:  # everything `module` imports, directly or not
        seen, todo = set(), [module]
        while todo:
            for imported in graph[todo.pop()] - seen:
                seen.add(imported)
                todo.append(imported)
        return seen

    # The report reads what registration and the gate write, never the other way round. (Checked on
    # the graph: the order static_order gives unrelated modules changes with the hash seed.)
    assert "report" not in reaches("register") and "report" not in reaches("gate")
