"""`metaembed evaluate` and `metaembed sweep` from the command line, on a small generated set and on
the real ViDoRe sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from metaembed.cli import main
from metaembed.stage_outputs import EvaluateReport, SweepBudgets

REPO = Path(__file__).resolve().parents[2]
VIDORE_SAMPLE = REPO.parent / "shared" / "fixtures" / "vidore" / "v1_beir_arxivqa_mini"


@pytest.fixture(scope="module")
def setup(tmp_path_factory, backbone_params):
    import torch

    from metaembed.backbones import load_backbone
    from metaembed.data.params import PrepareParams
    from metaembed.data.prepare import run_prepare
    from metaembed.model import MetaEmbed, ModelParams
    from metaembed.synth.generate import generate
    from metaembed.synth.params import DataParams

    root = tmp_path_factory.mktemp("cli-eval")
    data = DataParams.model_validate({"train": {"rows_per_subset": 4},
                                      "eval": {"queries_per_subset": 2, "candidates": 6, "twins_per_query": 3},
                                      "pages": {"train_docs": 2, "eval_docs": 2}})
    generate(data, root / "raw", progress=False)
    run_prepare(root / "raw", PrepareParams(out_dir=str(root / "prepared")), progress=False)
    torch.manual_seed(0)
    MetaEmbed(load_backbone(backbone_params), ModelParams(num_query_meta=2, num_candidate_meta=4),
              backbone_params).save_pretrained(root / "model")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["prepare"]["out_dir"] = str(root / "prepared")
    params["train"]["output_dir"] = str(root / "model")
    params["evaluate"].update(out_dir=str(root / "evaluate"), budgets=[[1, 1], [2, 4]], num_threads=1)
    params["sweep"].update(out_dir=str(root / "sweep"), budgets=[[1, 1], [2, 4]], encode_sample=2)
    params["sweep"]["latency"].update(candidates=[100, 1000], repeats=1, quiet_wait_s=0, flush_mib=0)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def test_evaluate_then_sweep_print_their_tables_and_write_their_files(setup, capsys):
    params = str(setup / "params.yaml")
    assert main(["evaluate", "--params", params, "--no-mlflow", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "MMEB P@1" in out and "chance" in out and "wrote " in out
    assert set(json.loads((setup / "evaluate" / "metrics.json").read_text())["budgets"]) == {"1x1", "2x4"}
    report = EvaluateReport.read(setup / "evaluate" / "report.json")  # as the baselines read it
    assert set(report.summary) == set(report.budgets) == {"1x1", "2x4"} and report.model.dim == 128

    assert main(["sweep", "--params", params, "--no-mlflow", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Pareto" in out and "budgets.json" in out
    budgets = SweepBudgets.read(setup / "sweep" / "budgets.json")
    assert [row.name for row in budgets.budgets] == ["1x1", "2x4"] and budgets.mlflow_run_id is None


def test_evaluate_reads_a_real_vidore_folder(setup, capsys):
    if not VIDORE_SAMPLE.is_dir():
        pytest.skip(f"{VIDORE_SAMPLE} is absent")
    assert main(["evaluate", "--params", str(setup / "params.yaml"), "--vidore", str(VIDORE_SAMPLE),
                 "--no-mlflow", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 ViDoRe sets (3 pages)" in out and "0 MMEB subsets" in out
    report = EvaluateReport.read(setup / "evaluate-external" / "report.json")
    assert report.sets["vidore"]["v1_beir_arxivqa_mini"] == {"layout": "beir", "queries": 2, "pages": 3,
                                                             "counted_as": "v1_beir_arxivqa_mini"}
    assert 0 < report.summary["2x4"]["vidore_ndcg_at_5"] <= 1 and report.mmeb == {"1x1": {}, "2x4": {}}


def test_a_folder_that_is_not_vidore_is_an_error_naming_it(setup, tmp_path):
    with pytest.raises(ValueError, match=f"{tmp_path}: not a ViDoRe evaluation folder"):
        main(["evaluate", "--params", str(setup / "params.yaml"), "--vidore", str(tmp_path), "--no-mlflow"])
