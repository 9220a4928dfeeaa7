"""The index benchmark on tiny sizes: every row is there, the figures are sane, and the saved index
is what gets searched."""

from __future__ import annotations

import argparse
import json

from metaembed.benchmarks import index as bench

TINY = ["-n", "600", "--num-vectors", "4", "-d", "16", "--budgets", "1x1,2x4", "--first-stage-ks", "20,600",
        "--queries", "4", "--latency-queries", "2", "--dtypes", "int8,binary", "--threads", "1"]


def run(tmp_path, *extra: str) -> dict:
    parser = argparse.ArgumentParser()
    bench.configure(parser)
    output = tmp_path / "index.json"
    assert bench.run(parser.parse_args([*TINY, *extra, "--output", str(output)])) == 0
    return json.loads(output.read_text())


def test_run_reports_every_dtype_budget_and_search_with_full_recall_when_all_rows_are_shortlisted(
    tmp_path, capsys
) -> None:
    report = run(tmp_path, "--plot", str(tmp_path / "index.png"))
    rows = report["results"]
    assert [(r["dtype"], tuple(r["budget"]), r["search"]) for r in rows[:3]] == [
        ("int8", (1, 1), "exhaustive"), ("int8", (1, 1), "two-stage k'=20"), ("int8", (1, 1), "two-stage k'=600")]
    assert len(rows) == 2 * 2 * 3 and all(r["ms_per_query"] > 0 for r in rows)
    # Shortlisting all 600 rows makes two-stage exhaustive: its recall must be exactly 1.
    assert all(r["recall_at_10"] == 1.0 for r in rows if r["search"] == "two-stage k'=600")
    # int8 holds D codes and a float32 scale per vector, binary D/8 bytes.
    assert {(r["dtype"], r["budget"][1], r["bytes_per_candidate"]) for r in rows} == {
        ("int8", 1, 20), ("int8", 4, 80), ("binary", 1, 2), ("binary", 4, 8)}
    exhaustive = [r for r in rows if r["search"] == "exhaustive"]
    assert all(r["x_roofline"] > 0 for r in exhaustive)
    assert set(report["build_s"]) == {"int8", "binary"} and report["opened"] == {}
    assert report["roofline"]["matmul_gflops"] > 0 and report["peak_rss_gib"] > 0
    assert (tmp_path / "index.png").stat().st_size > 10_000
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 2 + len(rows) and "binary" in table[-1] and "(2, 4)" in table[-1]


def test_save_dir_searches_the_memory_mapped_copy_with_the_same_results(tmp_path) -> None:
    in_memory = run(tmp_path)
    saved = run(tmp_path, "--save-dir", str(tmp_path / "saved"))
    assert set(saved["opened"]) == {"int8", "binary"}
    for dtype, opened in saved["opened"].items():
        assert len(opened["opens_s"]) == 3 and opened["open_s"] > 0
        assert opened["folder_bytes"] == sum(p.stat().st_size for p in (tmp_path / "saved" / dtype).iterdir())
    recalls = [(r["dtype"], r["search"], r["recall_at_10"]) for r in in_memory["results"]]
    assert [(r["dtype"], r["search"], r["recall_at_10"]) for r in saved["results"]] == recalls
