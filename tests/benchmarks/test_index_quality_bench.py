"""`metaembed bench index-quality` on a tiny model's real evaluation: float32 reproduces the
evaluation exactly, the other dtypes are scored as the index stores them, and the recall is 1 when
the shortlist holds the whole corpus."""

from __future__ import annotations

import json
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import pytest
import yaml

from metaembed.config import load_root

REPO = Path(__file__).resolve().parents[2]
BUDGETS = [[1, 1], [2, 4], [4, 8]]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, prepared_dir, saved_model) -> Path:
    """A params file whose evaluate stage ran on the tiny model (no MLflow)."""
    from metaembed.evaluation.stage import run_evaluate

    folder = tmp_path_factory.mktemp("index-quality")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["prepare"]["out_dir"] = str(prepared_dir)
    params["train"].update(output_dir=str(saved_model), report_dir=str(folder / "train"))
    params["evaluate"].update(out_dir=str(folder / "evaluate"), budgets=BUDGETS, batch_size=16, num_threads=1,
                              log_to_mlflow=False)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    run_evaluate(load_root(path), progress=False)
    return path


@pytest.fixture(scope="module")
def report(evaluated) -> tuple[dict, str, Path]:
    from metaembed.cli import main

    out = evaluated.parent / "bench"
    printed = StringIO()
    with redirect_stdout(printed):
        code = main(["bench", "index-quality", "--params", str(evaluated), "--first-stage-ks", "10,1000",
                     "--queries", "20", "--first-stage-vectors", "1,mean,8", "--output", str(out / "q.json"), "--plot", str(out / "q.png")])
    assert code == 0, printed.getvalue()
    assert (out / "q.png").stat().st_size > 10_000
    return json.loads((out / "q.json").read_text()), printed.getvalue(), evaluated


def test_float32_storage_reproduces_the_evaluation_and_bfloat16_is_the_zero_reference(report) -> None:
    payload, printed, params = report
    evaluation = json.loads((Path(load_root(params).evaluate.out_dir) / "report.json").read_text())
    rows = {(row["dtype"], row["budget"]): row for row in payload["quality"]}
    assert {dtype for dtype, _ in rows} == {"float32", "bfloat16", "int8", "binary"}
    for budget in ("1x1", "2x4", "4x8"):
        for metric in ("mmeb_p_at_1", "vidore_ndcg_at_5"):
            assert rows["float32", budget][metric] == evaluation["summary"][budget][metric]
            assert rows["bfloat16", budget][f"{metric}_vs_bfloat16_points"] == 0
    # 8 candidate vectors of D = hidden size: bytes as the index stores them.
    dim = rows["float32", "4x8"]["bytes_per_candidate"] // (8 * 4)
    assert rows["int8", "4x8"]["bytes_per_candidate"] == 8 * (dim + 4)
    assert rows["binary", "4x8"]["bytes_per_candidate"] == 8 * dim // 8
    lines = [line.split("|")[1:3] for line in printed.splitlines() if line.startswith("|")]
    assert any(a.strip() == "int8" and b.strip() == "2x4" for a, b in lines)
    assert "k'=1000: recall@10 (ms)" in printed


def test_binary_scores_differ_from_float_so_the_codec_is_really_applied(report) -> None:
    from metaembed.benchmarks.index_quality import stored_as
    from metaembed.evaluation.encode import load_stores

    payload, _, params = report
    stores, _ = load_stores(Path(load_root(params).evaluate.out_dir) / "embeddings")
    candidate = stores["candidate"]
    binary = stored_as(candidate, "binary", "candidate")
    real = binary.vectors[0, : int(candidate.lengths[0])]
    # Sign codes decode to +-1/sqrt(D) in every component.
    assert real.abs().unique().tolist() == pytest.approx([candidate.dim ** -0.5])
    assert stored_as(candidate, "float32", "candidate").vectors.equal(candidate.vectors)


def test_recall_is_one_when_the_shortlist_holds_the_whole_corpus(report) -> None:
    payload, _, _ = report
    whole = [row for row in payload["recall"] if row["first_stage_k"] == 1000]
    assert [(row["first_stage_vectors"], row["budget"]) for row in whole] == [
        (m, b) for m in ("1", "mean", "8") for b in ("1x1", "2x4", "4x8")]
    assert all(row["candidates"] < 1000 and row["recall_at_10"] == 1.0 for row in whole)
    assert all(row["queries"] == 20 for row in payload["recall"])
