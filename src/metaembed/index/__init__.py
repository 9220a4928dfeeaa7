"""Multi-vector index: stored candidate vectors searched by budgeted MaxSim (docs/index.md).

`MultiVectorIndex` imports torch and faiss, so it is loaded on first use; `sizes` stays light
for callers that only report bytes.
"""

from __future__ import annotations

from typing import Any

from metaembed.index.sizes import (INDEX_DTYPES, first_stage_bytes_per_candidate, index_bytes_per_candidate,
                                   vector_bytes)

__all__ = ["INDEX_DTYPES", "MultiVectorIndex", "first_stage_bytes_per_candidate", "index_bytes_per_candidate",
           "vector_bytes"]


def __getattr__(name: str) -> Any:
    if name == "MultiVectorIndex":
        from metaembed.index.index import MultiVectorIndex

        return MultiVectorIndex
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
