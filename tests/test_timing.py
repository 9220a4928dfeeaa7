"""The shared timing pieces: other processes' load, the quiet gate, the quiet median."""

import os
import time
from pathlib import Path

import pytest
import torch

from metaembed import timing


def test_cpu_probe_reports_other_processes_load() -> None:
    probe = timing.CpuProbe()
    assert probe.other_cores() is None  # a window this short cannot be measured in 10 ms ticks
    time.sleep(timing.CpuProbe.MIN_WINDOW_S + 0.05)
    load = probe.other_cores()
    if Path("/proc/stat").exists():
        assert load is not None and 0.0 <= load <= (os.cpu_count() or 1)
    else:
        assert load is None
    no_wait = timing.QuietGate(max_wait_s=0.0, threshold=0.1)
    assert no_wait.wait() is False and no_wait.gave_up  # a zero budget never waits
    # Nobody can be below a negative threshold: the gate times out once, then stops waiting.
    impossible = timing.QuietGate(max_wait_s=0.3, threshold=-1.0)
    start = time.monotonic()
    assert impossible.wait() is False and impossible.gave_up
    assert impossible.wait() is False and time.monotonic() - start < 1.5


def test_quiet_median_leaves_disturbed_repeats_out_unless_all_are():
    assert timing.quiet_median([1.0, 9.0, 3.0], [0.0, 0.9, None]) == pytest.approx(2.0)
    assert timing.quiet_median([1.0, 5.0], [0.5, 0.5]) == pytest.approx(3.0)


def test_time_maxsim_times_each_repeat_after_warmup():
    queries, index = torch.randn(2, 1, 8), torch.randn(5, 4, 8)
    steps = []
    times, others = timing.time_maxsim(queries, index, (1, 4), warmup=1, repeats=3, flush_mib=1,
                                       on_step=lambda: steps.append(1))
    assert len(times) == len(others) == 3 and len(steps) == 4 and all(t > 0 for t in times)
