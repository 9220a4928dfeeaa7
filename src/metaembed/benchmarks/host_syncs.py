"""Count what makes tensor values travel to the host inside a block of code.

On a GPU each of these stalls the host until the device catches up (a "sync"): `item()`, `bool()`,
`int()`, `float()` of a tensor (the aten::_local_scalar_dense op), `tolist()`, and ops whose output
size depends on values (aten::nonzero, behind boolean indexing; aten::unique). Counted on any
device, so a CPU test can show that a loop runs without one per layer.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

SYNCING_OPS = ("aten::_local_scalar_dense", "aten::nonzero", "aten::_unique2", "aten::unique_consecutive")


@contextlib.contextmanager
def counting_host_syncs() -> Iterator[Counter]:
    """`with counting_host_syncs() as counts:` ... then counts["tolist"], counts["aten::nonzero"], ..."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    counts: Counter = Counter()
    tolist = torch.Tensor.tolist

    def counted(self):
        counts["tolist"] += 1
        return tolist(self)

    torch.Tensor.tolist = counted
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            yield counts
    finally:
        torch.Tensor.tolist = tolist
    for event in prof.key_averages():
        if event.key in SYNCING_OPS:
            counts[event.key] += event.count
