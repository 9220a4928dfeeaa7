"""`metaembed bench service`: a bounded load test of the HTTP search service on loopback.

    python -m metaembed.benchmarks.service --index artifacts/index/index --output service.json --plot service.png

It starts `metaembed serve` over the index in a child process (so that the clients never hold the
server's GIL), bound to 127.0.0.1 on a free port, and waits for `GET /health`. Then, for each
concurrency C and each budget, C client threads (one keep-alive httpx.Client each) share a fixed
number of `POST /search` requests, text queries cycled from a fixed list, after a few sequential
warm-up requests at that budget. Per (C, budget) it reports:

* p50 and p99 latency: percentiles of each request's wall time as the client sees it (send to
  body read). With 64 requests p99 sits between the two slowest;
* queries per second: requests / wall time of the whole burst;
* the service's own timing_ms medians (encode, search, total): what the rest of the latency is
  queueing, HTTP and JSON;
* errors: every non-200 answer or client exception counts, and the first one's message is kept;
  failed warm-up requests are counted too (apart). `run` exits 1 if there was any.

The service encodes one query at a time (Searcher holds a lock around the model), so raising C
raises latency by the queueing while qps stays near 1 / (encode + search + HTTP). The server's torch
and faiss threads are set through OMP_NUM_THREADS/MKL_NUM_THREADS (`--threads`, default 1). The
clients run in this process and share the machine's cores with the server: on a 2-core machine
that is part of what is measured. The server is always stopped, also on errors and Ctrl-C.

httpx, numpy and matplotlib are imported inside functions so that building the CLI parser stays fast.
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from metaembed.benchmarks.outputs import write_report
from metaembed.markdown_table import markdown_table
from metaembed.serving.budget import BudgetError, format_budget, parse_budget

Budget = tuple[int, int]
# Budgets tried by default, kept when the index's model holds them (PAPER.md's grid).
DEFAULT_BUDGETS: tuple[Budget, ...] = ((1, 1), (2, 4), (4, 8), (8, 16), (16, 64))
QUERIES = (
    "a red circle on a white page",
    "the quarterly revenue table for 2023",
    "a chart of monthly rainfall",
    "a page about the history of the printing press",
    "which figure shows the model architecture?",
    "a blue square",
    "a scanned invoice with a total at the bottom",
    "how to bake sourdough bread",
)


class ServiceStartError(RuntimeError):
    """The service did not answer /health: it exited, or did not come up in time."""


@dataclass(frozen=True)
class Settings:
    index: str
    params: str = "params.yaml"
    budgets: tuple[Budget, ...] | None = None  # None: every DEFAULT_BUDGETS entry the index holds
    concurrencies: tuple[int, ...] = (4, 16)
    requests: int = 64
    warmup: int = 4
    k: int = 10
    first_stage_k: int | None = None
    threads: int = 1
    startup_timeout_s: float = 180.0
    request_timeout_s: float = 120.0


def configure(parser: argparse.ArgumentParser) -> None:
    defaults = Settings(index="")
    parser.add_argument("--index", required=True, help="index folder written by `metaembed index build`")
    parser.add_argument("--params", default=defaults.params, help="params file the service reads (registry)")
    parser.add_argument("--budgets", type=_budgets, default=None,
                        help="comma-separated RQxRC (default: those of 1x1,2x4,4x8,8x16,16x64 the index holds)")
    parser.add_argument("--concurrency", type=_positive_ints, default=defaults.concurrencies,
                        help="comma-separated concurrent clients (default 4,16)")
    parser.add_argument("--requests", type=_positive_int, default=defaults.requests,
                        help="timed requests per concurrency and budget (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=defaults.warmup,
                        help="untimed sequential requests before each burst (default %(default)s)")
    parser.add_argument("-k", type=_positive_int, default=defaults.k, help="results per request")
    parser.add_argument("--first-stage-k", type=_positive_int, default=None,
                        help="two-stage search with this shortlist (default: exhaustive)")
    parser.add_argument("--threads", type=_positive_int, default=defaults.threads,
                        help="the server's torch/faiss threads (default %(default)s)")
    parser.add_argument("--startup-timeout", type=float, default=defaults.startup_timeout_s,
                        help="seconds to wait for the service's /health (default %(default)s)")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG plot here")


def run(args: argparse.Namespace) -> int:
    settings = Settings(
        index=str(args.index), params=str(args.params), budgets=args.budgets, concurrencies=tuple(args.concurrency),
        requests=args.requests, warmup=args.warmup, k=args.k, first_stage_k=args.first_stage_k,
        threads=args.threads, startup_timeout_s=args.startup_timeout,
    )
    try:
        report = benchmark(settings)
    except ServiceStartError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(report_table(report))
    write_report(report, args.output, args.plot, plot_report)
    failed = [r for r in report["results"] if r["errors"] or r["warmup_errors"]]
    for r in failed:
        print(f"error: {r['errors']}/{r['requests']} requests (and {r['warmup_errors']} warm-up requests) failed "
              f"at {r['budget']} with {r['concurrency']} clients: {r['first_error']}", file=sys.stderr)
    return 1 if failed else 0


def benchmark(settings: Settings) -> dict[str, Any]:
    """Start the service, load it at every (concurrency, budget); a JSON-ready report."""
    results = []
    with running_service(settings) as (url, health):
        budgets = settings.budgets or servable_budgets(health)
        for concurrency in settings.concurrencies:
            with _clients(url, concurrency, settings.request_timeout_s) as clients:
                results += [_burst(clients, budget, settings) for budget in budgets]
    return {"settings": asdict(settings), "machine": _machine(settings), "service": health,
            "budgets": [format_budget(b) for b in budgets], "results": results}


def servable_budgets(health: dict[str, Any]) -> tuple[Budget, ...]:
    """The DEFAULT_BUDGETS that fit the model's query and the index's candidate vectors, and the
    full budget when it is not among them."""
    vectors = health["vectors"]
    max_q, max_c = vectors["query"] or sys.maxsize, vectors["candidate"]  # query None: token-level
    fitting = [b for b in DEFAULT_BUDGETS if b[0] <= max_q and b[1] <= max_c]
    full = parse_budget(health["full_budget"])
    return tuple(fitting if full in fitting else [*fitting, full])


def report_table(report: dict[str, Any]) -> str:
    header = ["clients", "budget", "requests", "errors", "p50 ms", "p99 ms", "qps",
              "server encode ms", "server search ms"]
    rows = [[r["concurrency"], r["budget"], r["requests"], r["errors"], f"{r['p50_ms']:.1f}",
             f"{r['p99_ms']:.1f}", f"{r['qps']:.2f}", _ms(r["server_ms"]["encode"]), _ms(r["server_ms"]["search"])]
            for r in report["results"]]
    return markdown_table(header, rows)


def plot_report(report: dict[str, Any], path: Path) -> Path:
    """p50 (solid) and p99 (dashed) latency, and qps, against the budget; one colour per concurrency."""
    from matplotlib.figure import Figure

    from metaembed.evaluation.plots import save

    figure = Figure(figsize=(11, 4.2), layout="constrained")
    latency, rate = figure.subplots(1, 2)
    for concurrency in report["settings"]["concurrencies"]:
        rows = [r for r in report["results"] if r["concurrency"] == concurrency]
        names = [r["budget"] for r in rows]
        line, = latency.plot(names, [r["p50_ms"] for r in rows], marker="o", label=f"p50, {concurrency} clients")
        latency.plot(names, [r["p99_ms"] for r in rows], marker="^", linestyle="--", color=line.get_color(),
                     label=f"p99, {concurrency} clients")
        rate.plot(names, [r["qps"] for r in rows], marker="o", color=line.get_color(), label=f"{concurrency} clients")
    for ax, label in ((latency, "latency (ms)"), (rate, "queries per second")):
        ax.set_xlabel("budget (r_q x r_c)")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    service = report["service"]
    figure.suptitle(f"metaembed serve on loopback: {service['count']:,} candidates ({service['dtype']}), "
                    f"{report['settings']['requests']} requests per point, {report['settings']['threads']} server "
                    f"thread(s)")
    return save(figure, path)


# ---- the service -----------------------------------------------------------------------------------

@contextmanager
def running_service(settings: Settings) -> Iterator[tuple[str, dict[str, Any]]]:
    """(base URL, /health body) of `metaembed serve` over the index, stopped on leaving."""
    port = _free_port()
    command = [sys.executable, "-m", "metaembed.cli", "serve", "--index", settings.index,
               "--params", settings.params, "--port", str(port)]
    threads = str(settings.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    # A file, not a pipe: nobody reads the access log while the load runs, and a full pipe would
    # block the server.
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            yield url, _wait_for_health(url, server, log, settings.startup_timeout_s)
        finally:
            _stop(server)


def _free_port() -> int:
    # The port is free now; the server binds it a moment later (on loopback nothing else races
    # for it in practice, and a clash shows as a start error with uvicorn's message).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_health(url: str, server: subprocess.Popen, log, timeout_s: float) -> dict[str, Any]:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ServiceStartError(f"the service exited with status {server.returncode} before answering "
                                    f"/health; its output ends:\n{_tail(log)}")
        try:
            response = httpx.get(f"{url}/health", timeout=5)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.25)
    raise ServiceStartError(f"the service did not answer {url}/health within {timeout_s:.0f} s (raise "
                            f"--startup-timeout if loading the model is slow); its output ends:\n{_tail(log)}")


def _tail(log, lines: int = 20) -> str:
    # pread: the server shares the file's offset, so seeking here would move where it writes.
    text = os.pread(log.fileno(), 64 * 2**10, max(0, os.fstat(log.fileno()).st_size - 64 * 2**10))
    return "\n".join(text.decode(errors="replace").splitlines()[-lines:]) or "(nothing)"


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# ---- the clients -----------------------------------------------------------------------------------

@contextmanager
def _clients(url: str, count: int, timeout_s: float) -> Iterator[list]:
    """`count` keep-alive httpx clients, made before any timing: making one loads the TLS
    certificates (~20 ms of CPU here), which inside a burst would be counted against the service."""
    import httpx

    clients = [httpx.Client(base_url=url, timeout=timeout_s) for _ in range(count)]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


def _burst(clients: Sequence, budget: Budget, settings: Settings) -> dict[str, Any]:
    """Warm-up (sequential, through each client in turn), then `settings.requests` requests shared
    by one thread per client."""
    warmup = [_request(clients[i % len(clients)], _payload(i, budget, settings)) for i in range(settings.warmup)]
    jobs: queue.SimpleQueue = queue.SimpleQueue()
    for i in range(settings.requests):
        jobs.put(_payload(i, budget, settings))
    outcomes: list[dict[str, Any]] = []  # list.append is atomic: the threads share it safely

    def client_thread(client) -> None:
        while True:
            try:
                payload = jobs.get_nowait()
            except queue.Empty:
                return
            outcomes.append(_request(client, payload))

    workers = [threading.Thread(target=client_thread, args=(client,)) for client in clients]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    row = _summary(len(clients), budget, outcomes, time.perf_counter() - began)
    return row | {"warmup_errors": sum(o["error"] is not None for o in warmup)}


def _payload(i: int, budget: Budget, settings: Settings) -> dict[str, Any]:
    return {"text": QUERIES[i % len(QUERIES)], "budget": format_budget(budget), "k": settings.k,
            "first_stage_k": settings.first_stage_k}


def _request(client, payload: dict[str, Any]) -> dict[str, Any]:
    """Seconds, and the service's timing_ms or the error; never raises (every failure is counted)."""
    began = time.perf_counter()
    try:
        response = client.post("/search", json=payload)
        seconds = time.perf_counter() - began
        if response.status_code != 200:
            return {"seconds": seconds, "error": f"HTTP {response.status_code}: {response.text[:300]}"}
        return {"seconds": seconds, "error": None, "timing_ms": response.json()["timing_ms"]}
    except Exception as error:  # noqa: BLE001 - a client-side failure is a result to report
        return {"seconds": time.perf_counter() - began, "error": f"{type(error).__name__}: {error}"}


def _summary(concurrency: int, budget: Budget, outcomes: Sequence[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    import numpy as np

    seconds = np.array([o["seconds"] for o in outcomes])
    errors = [o["error"] for o in outcomes if o["error"] is not None]
    served = [o["timing_ms"] for o in outcomes if o["error"] is None]

    def server_median(key: str) -> float | None:
        return float(np.median([t[key] for t in served])) if served else None

    return {
        "concurrency": concurrency, "budget": format_budget(budget), "requests": len(outcomes),
        "errors": len(errors), "first_error": errors[0] if errors else None,
        # Over every request, failed ones included: a fast 4xx must not hide as good latency, and
        # the error count beside it says how many there were.
        "p50_ms": float(np.percentile(seconds, 50) * 1e3), "p99_ms": float(np.percentile(seconds, 99) * 1e3),
        "mean_ms": float(seconds.mean() * 1e3), "max_ms": float(seconds.max() * 1e3),
        "qps": len(outcomes) / wall_s, "wall_s": wall_s,
        "server_ms": {key: server_median(key) for key in ("encode", "search", "total")},
    }


# ---- helpers ---------------------------------------------------------------------------------------

def _machine(settings: Settings) -> dict[str, Any]:
    from metaembed.benchmarks.scoring import _cpu_model

    return {"cores": os.cpu_count(), "cpu": _cpu_model(),
            "python": platform.python_version(), "server_threads": settings.threads,
            "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _budgets(text: str) -> tuple[Budget, ...]:
    try:
        return tuple(parse_budget(part) for part in text.split(","))
    except BudgetError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text}")
    return value


def _positive_ints(text: str) -> tuple[int, ...]:
    return tuple(_positive_int(part) for part in text.split(","))


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    configure(_parser)
    raise SystemExit(run(_parser.parse_args()))
