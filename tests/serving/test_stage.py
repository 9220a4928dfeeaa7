"""The index stage on the real evaluate and sweep outputs of a tiny model: what it indexes, what it
times, what it writes, and how it refuses stale inputs."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
import yaml

from metaembed.config import ParamsError, load_root
from metaembed.stage_outputs import IndexLatency, MissingStageOutput, SweepBudgets

REPO = Path(__file__).resolve().parents[2]
BUDGETS = [[1, 1], [2, 4], [4, 8]]


def write_params(folder: Path, prepared_dir: Path, model: Path, **index) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["prepare"]["out_dir"] = str(prepared_dir)
    params["train"].update(output_dir=str(model), report_dir=str(folder / "train"))
    params["evaluate"].update(out_dir=str(folder / "evaluate"), budgets=BUDGETS, batch_size=16, num_threads=1,
                              log_to_mlflow=False)
    params["sweep"].update(out_dir=str(folder / "sweep"), budgets=BUDGETS, encode_sample=2, log_to_mlflow=False,
                           latency={"candidates": [100], "repeats": 1, "warmup": 0, "quiet_wait_s": 0,
                                    "flush_mib": 0})
    params["index"].update({"out_dir": str(folder / "index"), "latency": {"queries": 5, "repeats": 1}, **index})
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture(scope="module")
def swept(tmp_path_factory, prepared_dir, saved_model) -> Path:
    """A folder where evaluate and sweep ran on the tiny model (no MLflow); returns its params file."""
    from metaembed.evaluation.stage import run_evaluate
    from metaembed.evaluation.sweep import run_sweep

    path = write_params(tmp_path_factory.mktemp("index-stage"), prepared_dir, saved_model)
    run_evaluate(load_root(path), progress=False)
    run_sweep(load_root(path), progress=False)
    return path


@pytest.fixture(scope="module")
def staged(swept) -> tuple[Path, IndexLatency, str]:
    """The index stage run once through its command (a flat first stage shortlisting every candidate)."""
    from contextlib import redirect_stdout
    from io import StringIO

    from metaembed.cli import main

    params = yaml.safe_load(swept.read_text())
    params["index"].update(first_stage="flat", first_stage_k=1000)
    swept.write_text(yaml.safe_dump(params))
    printed = StringIO()
    with redirect_stdout(printed):
        code = main(["index", "stage", "--params", str(swept), "--no-progress"])
    assert code == 0, printed.getvalue()
    root = load_root(swept)
    return swept, IndexLatency.read(root.index_latency_path), printed.getvalue()


def test_the_stage_indexes_every_evaluation_candidate_and_times_each_sweep_budget(staged, saved_model):
    from metaembed.evaluation.encode import load_stores
    from metaembed.index import MultiVectorIndex
    from metaembed.registry.digest import folder_sha256
    from metaembed.serving.sidecar import read_sidecar

    path, latency, printed = staged
    root = load_root(path)
    stores, _ = load_stores(Path(root.evaluate.out_dir) / "embeddings")
    index = MultiVectorIndex.load(root.index_dir)
    assert set(index._ids) == set(stores["candidate"].keys) and len(index) == latency.index.candidates
    assert index.meta["model_sha256"] == folder_sha256(saved_model) == latency.model_sha256
    assert index.meta["model_uri"] == str(saved_model.resolve())
    assert all(read_sidecar(root.index_dir)["display"][key] for key in stores["candidate"].keys)

    sweep = SweepBudgets.read(root.budgets_path)
    assert [row.name for row in latency.budgets] == [row.name for row in sweep.budgets] == ["1x1", "2x4", "4x8"]
    for row in latency.budgets:
        assert row.index_bytes_per_candidate == row.r_c * 128 * 2  # bfloat16, D = 128
        assert row.exhaustive_ms > 0 and row.two_stage_ms > 0
        # A flat shortlist of first_stage_k >= every candidate holds the exhaustive top-k.
        assert latency.index.candidates <= latency.first_stage_k and row.recall_at_k == 1.0
    assert (latency.queries, latency.repeats, latency.threads, latency.k) == (5, 1, 1, 10)
    assert "4x8" in printed and "two-stage search (flat, first_stage_k=1000)" in printed


def test_the_stage_writes_metrics_plot_data_and_a_plot(staged):
    path, latency, _ = staged
    out = Path(load_root(path).index.out_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["candidates"] == latency.index.candidates
    assert metrics["budgets"]["2x4"]["two_stage_ms"] == latency.row("2x4").two_stage_ms
    assert [row["budget"] for row in json.loads((out / "plot_data.json").read_text())] == ["1x1", "2x4", "4x8"]
    assert (out / "latency_per_budget.png").read_bytes()[:4] == b"\x89PNG"
    manifest = json.loads((out / "index" / "manifest.json").read_text())
    assert manifest["first_stage"]["kind"] == "flat" and manifest["dtype"] == "bfloat16"


def test_the_stage_index_is_searchable_with_the_model_it_names(staged):
    from metaembed.serving.searcher import Searcher

    path, _, _ = staged
    searcher = Searcher.open(load_root(path).index_dir, params_path=path)
    result = searcher.search(text="a red circle", budget=(2, 4), k=3)
    assert len(result.hits) == 3 and all(hit.display for hit in result.hits)


def test_an_hnsw_index_without_a_sweep_or_with_a_stale_cache_is_refused(swept, tmp_path):
    from metaembed.serving.stage import run_index_stage

    params = yaml.safe_load(swept.read_text())
    params["sweep"]["out_dir"] = str(tmp_path / "no-sweep")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(MissingStageOutput, match=r"budgets\.json not found: run the sweep first"):
        run_index_stage(load_root(path), progress=False)

    params["sweep"]["out_dir"] = str(Path(load_root(swept).budgets_path).parent)
    params["train"]["output_dir"] = str(tmp_path / "another-model")
    (tmp_path / "another-model").mkdir()
    (tmp_path / "another-model" / "config.json").write_text("{}")
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ValueError, match="holds embeddings of another model .* re-run `metaembed evaluate`"):
        run_index_stage(load_root(path), progress=False)


def test_index_params_are_checked_and_name_the_dtypes_of_the_index():
    from metaembed.index import INDEX_DTYPES
    from metaembed.serving.params import IndexDtype, IndexParams

    assert typing.get_args(IndexDtype) == INDEX_DTYPES  # the params model spells out the index's dtypes
    with pytest.raises(ValueError, match="first_stage_k=5 is below k=10"):
        IndexParams(first_stage_k=5, k=10)
    assert IndexParams(first_stage=None, first_stage_k=5, k=10).first_stage is None  # no shortlist: no bound
    with pytest.raises(ValueError, match="first_stage_vectors=4 needs first_stage_pool: first"):
        IndexParams(first_stage_vectors=4)
    assert IndexParams(first_stage_vectors=4, first_stage_pool="first").first_stage_vectors == 4


def test_a_misspelt_index_key_is_named(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["index"]["first_stage_kk"] = 64
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=r"index\.first_stage_kk: unknown key: .*did you mean `first_stage_k`"):
        load_root(path)
