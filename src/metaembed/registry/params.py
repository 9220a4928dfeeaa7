"""params.yaml `registry:` (where the model is registered) and `promotion:` (the gate's rules)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RegistryParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The registered model's name: `models:/<model_name>@champion`.
    model_name: str = Field("metaembed", min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class PromotionParams(BaseModel):
    """The champion alias moves only when every bound holds at the budget the product serves."""

    model_config = ConfigDict(extra="forbid")

    budget: tuple[int, int] = (16, 64)  # (r_q, r_c) served in production
    quality_metric: str = Field("mmeb_p_at_1", min_length=1)  # a key of the sweep's `quality`
    min_quality: float = Field(0.0, ge=0, le=1)  # fractions, like the sweep writes them
    # Cost bounds; null switches one off, but at least one must be set.
    max_index_bytes_per_candidate: int | None = Field(None, gt=0)
    index_dtype: str = Field("bfloat16", min_length=1)  # a key of the sweep's index_bytes_per_candidate
    max_latency_ms: float | None = Field(None, gt=0)
    latency_corpus_size: int = Field(100_000, gt=0)  # a key of the sweep's latency_ms_per_query
    # Required improvement over the champion, in the metric's units (0.01 = one point of P@1).
    min_gain: float = Field(0.005, ge=0)

    @model_validator(mode="after")
    def _some_cost_bound(self) -> "PromotionParams":
        if self.max_index_bytes_per_candidate is None and self.max_latency_ms is None:
            raise ValueError("set max_index_bytes_per_candidate and/or max_latency_ms: a promotion "
                             "gate without a cost bound would promote any model that is better")
        if min(self.budget) < 1:
            raise ValueError(f"budget must be (r_q, r_c) with both >= 1, got {list(self.budget)}")
        return self

    @property
    def budget_name(self) -> str:
        return f"{self.budget[0]}x{self.budget[1]}"
