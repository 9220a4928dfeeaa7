"""Smoke test of the index benchmark on tiny sizes: every row is there and the figures are sane."""

from __future__ import annotations

import argparse
import json

from metaembed.benchmarks import index as bench

TINY = ["-n", "600", "--num-vectors", "4", "-d", "16", "--budgets", "1x1,2x4", "--first-stage-ks", "20,600",
        "--queries", "4", "--latency-queries", "2", "--dtypes", "int8,binary"]


def test_run_reports_every_dtype_budget_and_search_with_full_recall_when_all_rows_are_shortlisted(
    tmp_path, capsys
) -> None:
    parser = argparse.ArgumentParser()
    bench.configure(parser)
    output = tmp_path / "index.json"
    assert bench.run(parser.parse_args([*TINY, "--output", str(output)])) == 0
    report = json.loads(output.read_text())
    rows = report["results"]
    assert [(r["dtype"], tuple(r["budget"]), r["search"]) for r in rows[:3]] == [
        ("int8", (1, 1), "exhaustive"), ("int8", (1, 1), "two-stage k'=20"), ("int8", (1, 1), "two-stage k'=600")]
    assert len(rows) == 2 * 2 * 3 and all(r["ms_per_query"] > 0 for r in rows)
    # Shortlisting all 600 rows makes two-stage exhaustive: its recall must be exactly 1.
    assert all(r["recall_at_10"] == 1.0 for r in rows if r["search"] == "two-stage k'=600")
    assert set(report["build_s"]) == {"int8", "binary"}
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 2 + len(rows) and "binary" in table[-1] and "(2, 4)" in table[-1]
