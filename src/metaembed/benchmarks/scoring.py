"""`metaembed bench scoring`: MaxSim throughput against this machine's own roofline.

For each dtype and budget (r_q, r_c) it scores a batch of B queries against N candidates with
`metaembed.scoring.maxsim` (warm-up, then the median of several timed repeats) and compares the
time with a roofline measured on the same machine:

    roofline time = max(FLOPs / matmul rate, bytes read / read bandwidth)
    FLOPs         = B * N * r_q * r_c * 2D      (a multiply-add counts 2, as for the matmul rate)
    bytes read    = N * r_c * D * element size  (the candidate vectors inside the budget)

The query vectors and the max/sum reductions are left out of the model: they are tiny next to
the index and the matmul. So is the [B, N] float32 output, which is not tiny at (1, 1) (12.8 MB
against a 25.6-51 MB index at the defaults); that is one reason (1, 1) sits furthest from its
roofline.

Index layout: by default each budget gets its own contiguous [N, r_c, D] index, as a deployment
that serves one budget would store it, so exactly the counted bytes stream from memory.
`--index-layout full` keeps one [N, R_c, D] index and lets maxsim slice the budget prefix: each
candidate's prefix is still one contiguous run, so the same bytes are read from memory, but
every chunk is first copied into a contiguous buffer (cache-resident) before its matmul.

torch is imported inside functions so that building the CLI parser stays fast.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaembed.benchmarks.outputs import write_report
from metaembed.costs import bytes_per_element
from metaembed.timing import QuietGate, contended, quiet_median, time_maxsim

if TYPE_CHECKING:
    import torch

Budget = tuple[int, int]
SUPPORTED_DTYPES = ("float32", "bfloat16", "float16")
# Matmul rate moving by more than this between the start and the end of a dtype's runs means
# something else was using the cores (2-thread OpenMP runs slow down many-fold when contended).
BUSY_DRIFT = 0.15


@dataclass(frozen=True)
class Settings:
    num_candidates: int = 100_000
    dim: int = 128
    batch: int = 32
    budgets: tuple[Budget, ...] = ((1, 1), (8, 16), (16, 64))
    dtypes: tuple[str, ...] = ("float32", "bfloat16")
    repeats: int = 5
    warmup: int = 1
    index_layout: str = "prefix"
    chunk_size: int | None = None
    matmul_sizes: tuple[int, ...] = (2048, 4096)
    bandwidth_mib: int = 512
    seed: int = 0
    progress: bool = True
    quiet_wait_s: float = 60.0
    quiet_threshold: float = 0.1
    flush_mib: int = 128


@dataclass(frozen=True)
class Roofline:
    dtype: str
    matmul_gflops: float  # best rate of a large square torch.mm in this dtype, before or after
    read_gbps: float  # torch.sum over a large float32 tensor: a pure streaming read
    copy_gbps: float  # read + write bytes of a large tensor copy, for reference
    matmul_gflops_before: float  # measured before this dtype's budgets ...
    matmul_gflops_after: float  # ... and again after them: a gap means a busy machine

    @property
    def drift(self) -> float:
        """Relative gap between the two matmul measurements (0 on a quiet machine)."""
        low = min(self.matmul_gflops_before, self.matmul_gflops_after)
        return self.matmul_gflops / low - 1 if low > 0 else float("inf")


@dataclass(frozen=True)
class BudgetResult:
    r_q: int
    r_c: int
    dtype: str
    index_layout: str
    num_queries: int
    num_candidates: int
    dim: int
    times_s: list[float]
    # Cores other processes kept busy around each repeat (None: cannot tell, e.g. not Linux);
    # repeats above the threshold are "contended" and left out of the median when others exist.
    other_cores: list[float | None]
    contended_repeats: int
    ms_per_batch: float
    ms_per_query: float
    candidates_per_s: float  # query-candidate pairs scored per second
    achieved_gflops: float
    flops: float
    bytes_read: float
    compute_time_s: float
    memory_time_s: float
    roofline_ms: float
    ratio_to_roofline: float
    bound: str  # which roofline term dominates: "compute" or "memory"


def configure(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    parser.add_argument("--num-candidates", "-n", type=_positive_int,
                        default=defaults.num_candidates,
                        help="candidates N in the index (default %(default)s)")
    parser.add_argument("--dim", "-d", type=_positive_int, default=defaults.dim,
                        help="embedding dimension D (default %(default)s)")
    parser.add_argument("--batch", "-b", type=_positive_int, default=defaults.batch,
                        help="queries scored together (default %(default)s)")
    parser.add_argument("--budgets", type=parse_budgets, default=defaults.budgets,
                        help="comma-separated r_q x r_c budgets (default 1x1,8x16,16x64)")
    parser.add_argument("--dtypes", type=_parse_dtypes, default=defaults.dtypes,
                        help=f"comma-separated dtypes among {', '.join(SUPPORTED_DTYPES)} "
                             "(default float32,bfloat16)")
    parser.add_argument("--repeats", type=_positive_int, default=defaults.repeats,
                        help="timed repeats per budget; the median is reported "
                             "(default %(default)s)")
    parser.add_argument("--warmup", type=_non_negative_int, default=defaults.warmup,
                        help="untimed runs before the repeats (default %(default)s)")
    parser.add_argument("--index-layout", choices=("prefix", "full"), default=defaults.index_layout,
                        help="prefix: one contiguous [N, r_c, D] index per budget; full: one "
                             "[N, R_c, D] index sliced by maxsim (default %(default)s)")
    parser.add_argument("--chunk-size", type=_positive_int, default=None,
                        help="candidates per maxsim chunk (default: maxsim picks one)")
    parser.add_argument("--matmul-sizes", type=_parse_sizes, default=defaults.matmul_sizes,
                        help="square matmul sizes for the compute roofline; the best rate counts "
                             "(default 2048,4096)")
    parser.add_argument("--bandwidth-mib", type=_positive_int, default=defaults.bandwidth_mib,
                        help="tensor size in MiB for the bandwidth roofline (default %(default)s)")
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="torch intra-op threads (default: torch's choice, all cores)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG plot here")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="hide the progress bar")
    parser.add_argument("--quiet-wait", dest="quiet_wait_s", type=float,
                        default=defaults.quiet_wait_s,
                        help="before each measurement wait up to this many seconds for other "
                             "processes to go idle; 0 disables (default %(default)s)")
    parser.add_argument("--flush-mib", type=_non_negative_int, default=defaults.flush_mib,
                        help="MiB read before each repeat to evict the index from the caches "
                             "(default %(default)s; 0 keeps a small index cache-hot)")
    parser.add_argument("--quiet-threshold", type=float, default=defaults.quiet_threshold,
                        help="cores other processes may use for the machine to count as quiet "
                             "(default %(default)s)")


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    settings = Settings(
        num_candidates=args.num_candidates, dim=args.dim, batch=args.batch,
        budgets=tuple(args.budgets), dtypes=tuple(args.dtypes), repeats=args.repeats,
        warmup=args.warmup, index_layout=args.index_layout, chunk_size=args.chunk_size,
        matmul_sizes=tuple(args.matmul_sizes), bandwidth_mib=args.bandwidth_mib, seed=args.seed,
        progress=args.progress, quiet_wait_s=args.quiet_wait_s,
        quiet_threshold=args.quiet_threshold, flush_mib=args.flush_mib,
    )
    report = benchmark(settings)
    print_report(report)
    write_report(report, args.output, args.plot, plot_report)
    return 0


def benchmark(settings: Settings) -> dict[str, Any]:
    """Measure the roofline and every (dtype, budget); returns a JSON-ready report."""
    import torch
    from tqdm import tqdm

    torch.manual_seed(settings.seed)
    runs_per_budget = settings.warmup + settings.repeats
    steps = len(settings.dtypes) * (len(settings.budgets) * runs_per_budget + 2)
    rooflines: dict[str, Roofline] = {}
    results: list[BudgetResult] = []
    gate = QuietGate(settings.quiet_wait_s, settings.quiet_threshold)
    bar = tqdm(total=steps, desc="bench scoring", disable=not settings.progress, file=sys.stderr)
    with bar:
        gate.wait()
        read_gbps, copy_gbps = measure_bandwidth(settings.bandwidth_mib, settings.repeats)
        for dtype_name in settings.dtypes:
            dtype = getattr(torch, dtype_name)
            bar.set_postfix_str(f"{dtype_name} matmul roofline")
            gate.wait()
            before = measure_matmul_gflops(dtype, settings.matmul_sizes, settings.repeats)
            bar.update(1)
            timings = []
            for budget, index in _indexes(settings, dtype):
                bar.set_postfix_str(f"{dtype_name} budget {budget[0]}x{budget[1]}")
                queries = _unit_vectors(settings.batch, budget[0], settings.dim, dtype)
                timings.append((budget, time_maxsim(
                    queries, index, budget, warmup=settings.warmup, repeats=settings.repeats,
                    flush_mib=settings.flush_mib, chunk_size=settings.chunk_size, gate=gate,
                    on_step=lambda: bar.update(1))))
                del index
            bar.set_postfix_str(f"{dtype_name} matmul roofline again")
            gate.wait()
            after = measure_matmul_gflops(dtype, settings.matmul_sizes, settings.repeats)
            bar.update(1)
            # The best of the two is the machine's capability; taking it keeps the ratio honest
            # (never flattered by a roofline measured while a neighbour was busy).
            roofline = Roofline(dtype_name, max(before, after), read_gbps, copy_gbps, before, after)
            rooflines[dtype_name] = roofline
            results += [summarise(t, b, settings, dtype_name, roofline, others)
                        for b, (t, others) in timings]
    return {
        "machine": _machine_info(),
        "argv": sys.argv,
        "gave_up_waiting_for_quiet": gate.gave_up and settings.quiet_wait_s > 0,
        "settings": asdict(settings),
        "roofline": {name: asdict(r) | {"drift": r.drift} for name, r in rooflines.items()},
        "results": [asdict(r) for r in results],
    }


def summarise(
    times: Sequence[float],
    budget: Budget,
    settings: Settings,
    dtype: str,
    roofline: Roofline,
    other_cores: Sequence[float | None] | None = None,
) -> BudgetResult:
    """Turn repeat times into throughput figures and the ratio to the roofline time; the median
    leaves out repeats during which other processes were busy, unless all of them were."""
    r_q, r_c = budget
    other_cores = list(other_cores) if other_cores is not None else [None] * len(times)
    median = quiet_median(times, other_cores, settings.quiet_threshold)
    pairs = settings.batch * settings.num_candidates
    flops = float(pairs * r_q * r_c * 2 * settings.dim)
    bytes_read = float(settings.num_candidates * r_c * settings.dim * bytes_per_element(dtype))
    compute_s = flops / (roofline.matmul_gflops * 1e9)
    memory_s = bytes_read / (roofline.read_gbps * 1e9)
    roofline_s = max(compute_s, memory_s)
    return BudgetResult(
        r_q=r_q, r_c=r_c, dtype=dtype, index_layout=settings.index_layout,
        num_queries=settings.batch, num_candidates=settings.num_candidates, dim=settings.dim,
        times_s=list(times), other_cores=other_cores, contended_repeats=sum(contended(other_cores, settings.quiet_threshold)),
        ms_per_batch=median * 1e3, ms_per_query=median * 1e3 / settings.batch,
        candidates_per_s=pairs / median, achieved_gflops=flops / median / 1e9, flops=flops,
        bytes_read=bytes_read, compute_time_s=compute_s, memory_time_s=memory_s,
        roofline_ms=roofline_s * 1e3, ratio_to_roofline=median / roofline_s,
        bound="compute" if compute_s >= memory_s else "memory",
    )


def measure_matmul_gflops(dtype: torch.dtype, sizes: Sequence[int], repeats: int) -> float:
    """Best median GFLOP/s of square torch.mm over `sizes`, writing into a preallocated output.

    The preallocated output matters: a fresh multi-MiB result is page-faulted in on every call and
    that alone halves the measured rate on this class of machine.
    """
    import torch

    best = 0.0
    for size in sizes:
        a = torch.randn(size, size).to(dtype)
        b = torch.randn(size, size).to(dtype)
        out = torch.empty(size, size, dtype=dtype)
        seconds = _median_time(lambda: torch.mm(a, b, out=out), repeats)
        best = max(best, 2 * size**3 / seconds / 1e9)
    return best


def measure_bandwidth(mib: int, repeats: int) -> tuple[float, float]:
    """(read GB/s of torch.sum, read+write GB/s of a copy) over a `mib`-MiB float32 tensor."""
    import torch

    source = torch.ones(mib * 2**20 // 4)
    target = torch.empty_like(source)
    read_s = _median_time(lambda: torch.sum(source), repeats)
    copy_s = _median_time(lambda: target.copy_(source), repeats)
    nbytes = source.numel() * source.element_size()
    return nbytes / read_s / 1e9, 2 * nbytes / copy_s / 1e9


def parse_budgets(text: str) -> tuple[Budget, ...]:
    """'1x1,8x16' -> ((1, 1), (8, 16))."""
    budgets = []
    for part in text.split(","):
        pieces = part.strip().lower().split("x")
        if len(pieces) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in pieces):
            raise argparse.ArgumentTypeError(
                f"budget {part.strip()!r} is not r_qxr_c with positive ints, e.g. 8x16"
            )
        budgets.append((int(pieces[0]), int(pieces[1])))
    return tuple(budgets)


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 120))
    for name, roof in report["roofline"].items():
        console.print(
            f"roofline {name}: matmul {roof['matmul_gflops']:.1f} GFLOP/s (before "
            f"{roof['matmul_gflops_before']:.1f}, after {roof['matmul_gflops_after']:.1f}), read "
            f"{roof['read_gbps']:.1f} GB/s (copy {roof['copy_gbps']:.1f} GB/s), "
            f"{report['machine']['threads']} threads"
        )
        if roof["drift"] > BUSY_DRIFT:
            console.print(
                f"[yellow]warning: the {name} matmul rate moved by {roof['drift']:.0%} during the "
                "run, so the machine was busy; repeat when it is quiet[/yellow]"
            )
    if report.get("gave_up_waiting_for_quiet"):
        console.print("[yellow]warning: other processes kept the CPU busy, so some figures "
                      "are contended (see the quiet column); repeat when it is quiet[/yellow]")
    table = Table(title="MaxSim scoring (median of quiet repeats)")
    for column in ("budget", "dtype", "ms/batch", "ms/query", "cand/s", "GFLOP/s",
                   "roofline ms", "x roofline", "bound", "quiet"):
        table.add_column(column, justify="right")
    for r in report["results"]:
        table.add_row(
            f"({r['r_q']},{r['r_c']})", r["dtype"], f"{r['ms_per_batch']:.2f}",
            f"{r['ms_per_query']:.3f}", f"{r['candidates_per_s']:.3g}",
            f"{r['achieved_gflops']:.1f}", f"{r['roofline_ms']:.2f}",
            f"{r['ratio_to_roofline']:.2f}", r["bound"],
            f"{len(r['times_s']) - r['contended_repeats']}/{len(r['times_s'])}",
        )
    console.print(table)


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Achieved GFLOP/s against the matmul roofline, and the ratio to the roofline time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    dtypes = list(report["roofline"])
    budgets = list(dict.fromkeys(f"({r['r_q']},{r['r_c']})" for r in results))
    width = 0.8 / max(1, len(dtypes))
    fig, (ax_rate, ax_ratio) = plt.subplots(1, 2, figsize=(11, 4))
    for k, dtype in enumerate(dtypes):
        rows = {f"({r['r_q']},{r['r_c']})": r for r in results if r["dtype"] == dtype}
        xs = [i + (k - (len(dtypes) - 1) / 2) * width for i in range(len(budgets))]
        rates = [rows[b]["achieved_gflops"] if b in rows else 0.0 for b in budgets]
        ratios = [rows[b]["ratio_to_roofline"] if b in rows else 0.0 for b in budgets]
        bars = ax_rate.bar(xs, rates, width, label=dtype)
        ax_rate.axhline(report["roofline"][dtype]["matmul_gflops"], linestyle=":",
                        color=bars.patches[0].get_facecolor(), label=f"{dtype} matmul peak")
        ax_ratio.bar(xs, ratios, width, label=dtype)
    ax_ratio.axhline(2.0, linestyle="--", color="grey", label="2x roofline (target)")
    for ax, label in ((ax_rate, "achieved GFLOP/s"), (ax_ratio, "time / roofline time")):
        ax.set_xticks(range(len(budgets)), budgets)
        ax.set_xlabel("budget (r_q, r_c)")
        ax.set_ylabel(label)
        ax.legend(fontsize="small")
    settings = report["settings"]
    fig.suptitle(f"MaxSim, B={settings['batch']} queries, N={settings['num_candidates']:,}, "
                 f"D={settings['dim']}, {report['machine']['threads']} threads")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _indexes(settings: Settings, dtype: torch.dtype) -> Iterator[tuple[Budget, torch.Tensor]]:
    # One index alive at a time keeps the peak near one [N, R_c, D] tensor (3.3 GB at the defaults).
    if settings.index_layout == "full":
        full = _unit_vectors(settings.num_candidates, max(r_c for _, r_c in settings.budgets),
                             settings.dim, dtype)
        for budget in settings.budgets:
            yield budget, full
    else:
        for budget in settings.budgets:
            yield budget, _unit_vectors(settings.num_candidates, budget[1], settings.dim, dtype)


def _unit_vectors(rows: int, per_row: int, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """Random L2-normalised vectors [rows, per_row, dim], generated in float32 slabs so that the
    peak memory stays close to the final tensor's size."""
    import torch

    out = torch.empty(rows, per_row, dim, dtype=dtype)
    slab = max(1, 2**22 // max(1, per_row * dim))
    for start in range(0, rows, slab):
        block = torch.randn(min(slab, rows - start), per_row, dim)
        out[start:start + slab] = torch.nn.functional.normalize(block, dim=-1).to(dtype)
    return out


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _machine_info() -> dict[str, Any]:
    import torch

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text}")
    return value


def _parse_dtypes(text: str) -> tuple[str, ...]:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [n for n in names if n not in SUPPORTED_DTYPES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unsupported dtype(s) {unknown or text!r}; choose among {', '.join(SUPPORTED_DTYPES)}"
        )
    return names


def _parse_sizes(text: str) -> tuple[int, ...]:
    return tuple(_positive_int(t) for t in text.split(","))
