"""params.yaml `index:`: the index stage (`metaembed index stage`), which builds the served index of
the evaluation corpus and times its search at every budget of the sweep (docs/index.md).

Light on purpose: every command loads this model with the params root, so it imports only pydantic.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The storage dtypes of metaembed.index.sizes.INDEX_DTYPES (tests/serving/test_stage.py keeps the
# two equal); spelt out so that loading params does not import the index package.
IndexDtype = Literal["float32", "bfloat16", "int8", "binary"]


class IndexLatencyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queries: int = Field(16, gt=0)  # cached evaluation queries searched one at a time, per budget
    repeats: int = Field(2, gt=0)  # searches of each query per budget and mode; the median is kept
    # torch and faiss threads while building and searching: one avoids the OpenMP stalls a busy
    # neighbour causes on a shared machine (docs/index.md, "Measured").
    threads: int = Field(1, gt=0)
    seed: int = 0  # which queries are drawn


class IndexParams(BaseModel):
    """params.yaml `index:`."""

    model_config = ConfigDict(extra="forbid")

    out_dir: str = "artifacts/index"  # <out_dir>/index, latency.json, metrics.json, plots
    dtype: IndexDtype = "bfloat16"  # how the served index stores vectors: the gate's bytes count this
    first_stage: Literal["hnsw", "flat"] | None = "hnsw"  # null: exhaustive search only
    # Each candidate's leading vectors in the first stage: 1 (the first vector), up to R_c (each query
    # vector shortlists its own nearest candidates; metaembed.index.first_stage).
    first_stage_vectors: int = Field(1, gt=0)
    # "mean": one mean vector per candidate in the first stage; on the tiny default's evaluation
    # corpus it holds 0.96 of the (16, 64) top-10 at first_stage_k 256 where the first vector holds
    # 0.49 (docs/index.md).
    first_stage_pool: Literal["first", "mean"] = "mean"
    first_stage_k: int = Field(256, gt=0)  # shortlist per query for the two-stage search
    k: int = Field(10, gt=0)  # results per query; recall@k is two-stage against exhaustive
    latency: IndexLatencyParams = Field(default_factory=IndexLatencyParams)

    @model_validator(mode="after")
    def _shortlist_holds_k(self) -> IndexParams:
        if self.first_stage is not None and self.first_stage_k < self.k:
            raise ValueError(f"first_stage_k={self.first_stage_k} is below k={self.k}: the shortlist must hold "
                             "at least k candidates")
        if self.first_stage_pool == "mean" and self.first_stage_vectors != 1:
            raise ValueError(f"first_stage_vectors={self.first_stage_vectors} needs first_stage_pool: first (a mean "
                             "first stage holds one vector per candidate)")
        return self
