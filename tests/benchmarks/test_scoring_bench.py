"""Smoke test of `metaembed bench scoring` on tiny sizes: numbers are consistent and files appear."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from metaembed.benchmarks import scoring as bench

TINY = ["--num-candidates", "300", "--dim", "16", "--batch", "4", "--budgets", "1x1,2x4",
        "--repeats", "2", "--warmup", "1", "--matmul-sizes", "64", "--bandwidth-mib", "1",
        "--no-progress", "--quiet-wait", "0", "--flush-mib", "1"]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.configure(parser)
    return parser.parse_args(argv)


def test_run_writes_consistent_json_and_png(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    json_path, png_path = tmp_path / "out" / "scoring.json", tmp_path / "scoring.png"
    assert bench.run(parse([*TINY, "--output", str(json_path), "--plot", str(png_path)])) == 0

    printed = capsys.readouterr().out
    assert "roofline float32" in printed and "roofline bfloat16" in printed and "(2,4)" in printed
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads(json_path.read_text())
    assert set(report) >= {"machine", "settings", "roofline", "results"}
    assert [(r["dtype"], r["r_q"], r["r_c"]) for r in report["results"]] == [
        ("float32", 1, 1), ("float32", 2, 4), ("bfloat16", 1, 1), ("bfloat16", 2, 4)]

    for name, roof in report["roofline"].items():
        best = max(roof["matmul_gflops_before"], roof["matmul_gflops_after"])
        assert roof["matmul_gflops"] == best > 0
        assert roof["read_gbps"] > 0 and roof["copy_gbps"] > 0
    for r in report["results"]:
        roof = report["roofline"][r["dtype"]]
        element = 4 if r["dtype"] == "float32" else 2
        assert len(r["times_s"]) == 2 and all(t > 0 for t in r["times_s"])
        assert len(r["other_cores"]) == 2 and 0 <= r["contended_repeats"] <= 2
        quiet = [t for t, o in zip(r["times_s"], r["other_cores"]) if o is None or o <= 0.1]
        median = statistics.median(quiet or r["times_s"])
        assert r["ms_per_batch"] == pytest.approx(median * 1e3)
        assert r["ms_per_query"] == pytest.approx(median * 1e3 / 4)
        assert r["flops"] == 4 * 300 * r["r_q"] * r["r_c"] * 2 * 16
        assert r["bytes_read"] == 300 * r["r_c"] * 16 * element
        assert r["candidates_per_s"] == pytest.approx(4 * 300 / median)
        assert r["achieved_gflops"] == pytest.approx(r["flops"] / median / 1e9)
        compute = r["flops"] / (roof["matmul_gflops"] * 1e9)
        memory = r["bytes_read"] / (roof["read_gbps"] * 1e9)
        assert r["roofline_ms"] == pytest.approx(max(compute, memory) * 1e3)
        assert r["ratio_to_roofline"] == pytest.approx(r["ms_per_batch"] / r["roofline_ms"])
        assert r["bound"] == ("compute" if compute >= memory else "memory")


def test_full_index_layout_scores_the_same_budgets(tmp_path: Path) -> None:
    json_path = tmp_path / "full.json"
    argv = [*TINY, "--dtypes", "float32", "--index-layout", "full", "--output", str(json_path)]
    assert bench.run(parse(argv)) == 0
    results = json.loads(json_path.read_text())["results"]
    assert [(r["r_q"], r["r_c"], r["index_layout"]) for r in results] == [(1, 1, "full"), (2, 4, "full")]
    # Bytes count only the budget prefix even though the stored index holds 4 vectors per candidate.
    assert [r["bytes_read"] for r in results] == [300 * 1 * 16 * 4, 300 * 4 * 16 * 4]


def test_summarise_classifies_memory_and_compute_bound() -> None:
    settings = bench.Settings(num_candidates=1000, dim=64, batch=8)
    roof = bench.Roofline("float32", matmul_gflops=100.0, read_gbps=1.0, copy_gbps=1.0,
                          matmul_gflops_before=100.0, matmul_gflops_after=90.0)
    slow_memory = bench.summarise([0.5, 0.3, 0.4], (1, 1), settings, "float32", roof)
    # 1000 * 1 * 64 * 4 bytes at 1 GB/s = 256 us; 8 * 1000 * 128 FLOPs at 100 GFLOP/s = 10.24 us.
    assert slow_memory.bound == "memory"
    assert slow_memory.roofline_ms == pytest.approx(0.256)
    assert slow_memory.ratio_to_roofline == pytest.approx(0.4 / 256e-6)
    fast_memory = bench.Roofline("float32", 100.0, 1e6, 1e6, 100.0, 100.0)
    compute = bench.summarise([0.5], (16, 64), settings, "float32", fast_memory)
    assert compute.bound == "compute"
    assert compute.roofline_ms == pytest.approx(8 * 1000 * 16 * 64 * 128 / 100e9 * 1e3)
    assert roof.drift == pytest.approx(100 / 90 - 1)


def test_summarise_leaves_contended_repeats_out_of_the_median() -> None:
    settings = bench.Settings(num_candidates=10, dim=4, batch=2, quiet_threshold=0.1)
    roof = bench.Roofline("float32", 1.0, 1.0, 1.0, 1.0, 1.0)
    result = bench.summarise([1.0, 9.0, 2.0, 3.0], (1, 1), settings, "float32", roof,
                             other_cores=[0.0, 0.9, None, 0.05])
    assert result.contended_repeats == 1
    assert result.ms_per_batch == pytest.approx(2000.0)  # median of 1, 2, 3: the 9 s repeat is out
    everything_busy = bench.summarise([1.0, 5.0], (1, 1), settings, "float32", roof,
                                      other_cores=[0.5, 0.5])
    assert everything_busy.contended_repeats == 2
    assert everything_busy.ms_per_batch == pytest.approx(3000.0)


def test_parse_budgets() -> None:
    assert bench.parse_budgets("1x1, 8X16,16x64") == ((1, 1), (8, 16), (16, 64))
    for bad in ("8x", "0x1", "8,16", "axb"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not r_qxr_c with positive ints"):
            bench.parse_budgets(bad)


def test_bad_options_are_refused(capsys: pytest.CaptureFixture) -> None:
    for argv, message in ((["--dtypes", "float8"], "unsupported dtype"),
                          (["--repeats", "0"], "expected a positive int"),
                          (["--budgets", "1x"], "is not r_qxr_c")):
        with pytest.raises(SystemExit):
            parse(argv)
        assert message in capsys.readouterr().err


def test_module_import_does_not_load_torch() -> None:
    code = "import sys, metaembed.benchmarks.scoring; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": str(Path(bench.__file__).parents[2])})
    assert result.stdout.strip() == "False"
