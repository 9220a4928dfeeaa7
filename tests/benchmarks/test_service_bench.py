"""The service load test for real: `metaembed serve` in a child process over the plain index
(tests/conftest.py), loaded by client threads; and a service that cannot start is a clear error."""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

import pytest

from metaembed.benchmarks import service as bench

pytestmark = pytest.mark.slow  # spawns the service


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.configure(parser)
    return parser.parse_args(list(argv))


def test_every_request_is_served_and_timed_at_each_budget(plain_index, tmp_path, capsys) -> None:
    output, plot = tmp_path / "service.json", tmp_path / "service.png"
    code = bench.run(_args("--index", str(plain_index), "--budgets", "1x1,4x8", "--concurrency", "4",
                           "--requests", "12", "--warmup", "2", "-k", "3", "--output", str(output),
                           "--plot", str(plot)))

    assert code == 0, capsys.readouterr().err
    report = json.loads(output.read_text())
    assert [(r["concurrency"], r["budget"]) for r in report["results"]] == [(4, "1x1"), (4, "4x8")]
    for row in report["results"]:
        assert row["requests"] == 12 and row["errors"] == 0 and row["first_error"] is None
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"] and row["qps"] > 0
        assert row["server_ms"]["encode"] > 0 and row["server_ms"]["total"] <= row["p99_ms"]
    assert report["service"]["count"] == 6 and report["machine"]["server_threads"] == 1
    assert plot.read_bytes().startswith(b"\x89PNG")
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 2 + 2 and "4x8" in table[-1]


def test_refused_requests_are_counted_as_errors_and_fail_the_run(plain_index, capsys) -> None:
    # 8x16 is beyond the index's 4x8: every request is a 422, which must not pass for fast service.
    code = bench.run(_args("--index", str(plain_index), "--budgets", "8x16", "--concurrency", "2",
                           "--requests", "4", "--warmup", "1"))

    assert code == 1
    err = capsys.readouterr().err
    assert "4/4 requests (and 1 warm-up requests) failed at 8x16" in err and "HTTP 422" in err, err


def test_the_default_budgets_are_those_the_index_holds_plus_its_full_budget() -> None:
    health = {"vectors": {"query": 4, "candidate": 8}, "full_budget": "4x8"}
    assert bench.servable_budgets(health) == ((1, 1), (2, 4), (4, 8))
    health = {"vectors": {"query": 3, "candidate": 16}, "full_budget": "3x16"}
    assert bench.servable_budgets(health) == ((1, 1), (2, 4), (3, 16))


def test_a_service_that_cannot_start_is_an_error_with_its_output_not_a_hang(tmp_path, capsys) -> None:
    began = time.monotonic()
    code = bench.run(_args("--index", str(tmp_path / "no-such-index"), "--startup-timeout", "60"))

    assert code == 1
    assert time.monotonic() - began < 60  # it saw the service exit instead of waiting out the timeout
    err = capsys.readouterr().err
    # The service's own message (its output's tail) says what is wrong.
    assert re.search(r"exited with status 1 before answering /health[\s\S]*no-such-index: no such index", err), err


def test_a_service_too_slow_to_start_times_out_and_is_stopped(plain_index) -> None:
    # Loading the model takes seconds, so a 0.5 s limit always runs out.
    with pytest.raises(bench.ServiceStartError, match=r"did not answer .*/health within 0 s"):
        bench.benchmark(bench.Settings(index=str(plain_index), startup_timeout_s=0.5))
    assert _children() == []


def _children() -> list[int]:
    """Live (not zombie) child processes of this one, from /proc."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("no /proc")
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue  # gone meanwhile
        if int(ppid) == os.getpid() and state != "Z":
            children.append(int(stat.parent.name))
    return children
