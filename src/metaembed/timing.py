"""Timing on a shared machine: how busy the other processes keep the cores, a gate that waits
for quiet, and the MaxSim timing loop that the sweep's latency and `metaembed bench scoring` share.

torch is imported inside functions so that importing this module stays cheap.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Repeats during which other processes kept more cores than this busy count as contended.
QUIET_THRESHOLD = 0.1


def time_maxsim(
    queries: torch.Tensor,
    index: torch.Tensor,
    budget: tuple[int, int],
    *,
    warmup: int,
    repeats: int,
    flush_mib: int,
    chunk_size: int | None = None,
    gate: QuietGate | None = None,
    on_step: Callable[[], None] = lambda: None,
) -> tuple[list[float], list[float | None]]:
    """Seconds per maxsim call for each timed repeat (after the untimed warm-up runs), and the
    cores other processes used meanwhile (see `CpuProbe`)."""
    import torch

    from metaembed.scoring import maxsim

    times: list[float] = []
    others: list[float | None] = []
    # Read before every repeat to push the index out of the last-level cache: a (1, 1) bf16 index
    # of 100k candidates (25.6 MB) fits a 32 MiB L3, and back-to-back repeats would then time
    # cache hits instead of the memory reads the roofline counts.
    flush = torch.ones(flush_mib * 2**20 // 4)
    with torch.inference_mode():
        for step in range(warmup + repeats):
            timed = step >= warmup
            if timed and gate is not None:
                gate.wait()
            torch.sum(flush)
            probe = CpuProbe()
            start = time.perf_counter()
            maxsim(queries, index, budget, chunk_size=chunk_size)
            elapsed = time.perf_counter() - start
            if timed:
                times.append(elapsed)
                # Stretch short windows to what 10 ms ticks can resolve: the load just after a
                # short repeat stands for the load during it (the timing itself is already taken).
                time.sleep(max(0.0, CpuProbe.MIN_WINDOW_S - elapsed))
                others.append(probe.other_cores())
            on_step()
    return times, others


def contended(other_cores: Sequence[float | None], threshold: float = QUIET_THRESHOLD) -> list[bool]:
    return [o is not None and o > threshold for o in other_cores]


def quiet_median(times: Sequence[float], other_cores: Sequence[float | None],
                 threshold: float = QUIET_THRESHOLD) -> float:
    """Median of the repeats no other process disturbed; of all of them when every one was."""
    quiet = [t for t, busy in zip(times, contended(other_cores, threshold)) if not busy]
    return statistics.median(quiet or times)


class CpuProbe:
    """CPU time used by other processes since creation, from /proc/stat minus our own.

    On a shared 2-core machine a neighbour taking one core slows 2-thread OpenMP kernels many-fold
    (each parallel region waits for the descheduled thread), so timings must know about it.
    Clock ticks are 10 ms: windows shorter than `MIN_WINDOW_S` are too coarse and report None.
    """

    MIN_WINDOW_S = 0.25

    def __init__(self) -> None:
        self._start = self._snapshot()

    def other_cores(self) -> float | None:
        """Average number of cores other processes kept busy over the window, or None."""
        busy0, own0, wall0 = self._start
        busy1, own1, wall1 = self._snapshot()
        window = wall1 - wall0
        if busy0 is None or busy1 is None or window < self.MIN_WINDOW_S:
            return None
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / window)

    @staticmethod
    def _snapshot() -> tuple[float | None, float, float]:
        times = os.times()
        return _busy_cpu_seconds(), times.user + times.system, time.perf_counter()


class QuietGate:
    """Waits, before each measurement, until other processes use at most `threshold` cores.

    Each wait lasts at most `max_wait_s`; after the first one that times out the machine is taken
    as busy for good and later waits return at once, so a busy machine costs one timeout, not one
    per repeat (the contended repeats are then flagged through `CpuProbe`).
    """

    def __init__(self, max_wait_s: float, threshold: float) -> None:
        self.max_wait_s = max_wait_s
        self.threshold = threshold
        self.gave_up = max_wait_s <= 0

    def wait(self) -> bool:
        """True once the machine is quiet; False if it stayed busy (or cannot be probed)."""
        if self.gave_up:
            return False
        deadline = time.monotonic() + self.max_wait_s
        while time.monotonic() < deadline:
            probe = CpuProbe()
            time.sleep(CpuProbe.MIN_WINDOW_S)
            load = probe.other_cores()
            if load is None:
                break
            if load <= self.threshold:
                return True
        self.gave_up = True
        return False


def _busy_cpu_seconds() -> float | None:
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
    ticks = [int(v) for v in fields[:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
