"""params.yaml `registry:` (where the model is registered) and `promotion:` (the gate's rules)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RegistryParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The registered model's name: `models:/<model_name>@champion`.
    model_name: str = Field("metaembed", min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class PromotionParams(BaseModel):
    """The gate serves each version at the cheapest budget within `max_quality_drop` of its best
    and within the cost bounds (registry/served.py); champion moves only when the candidate, at
    its served budget, is good enough and beats the champion's quality at equal or lower cost."""

    model_config = ConfigDict(extra="forbid")

    served_budget: tuple[int, int] | None = None  # null: the gate picks; [r_q, r_c] pins the budget
    quality_metric: str = Field("mmeb_p_at_1", min_length=1)  # a key of the sweep's `quality`
    min_quality: float = Field(0.0, ge=0, le=1)  # at the served budget; fractions, like the sweep writes them
    # A budget may be served when its quality is at most this far below the version's best budget.
    max_quality_drop: float = Field(0.01, ge=0, le=1)
    # Cost bounds on a served budget; null switches one off. Bytes are in index.dtype.
    max_index_bytes_per_candidate: int | None = Field(None, gt=0)
    max_latency_ms: float | None = Field(None, gt=0)  # the index stage's measured ms/query
    # A budget's two-stage latency stands for its cost only when the two-stage search keeps this share
    # of the exhaustive top-k; below it the exhaustive latency does, since the sweep's quality is
    # exhaustive quality (a first stage that misses half the top-10 is not that quality, faster).
    min_recall: float = Field(0.95, ge=0, le=1)
    # Only when a version has no index stage latency: the sweep's synthetic index size (a key of its
    # latency_ms_per_query) whose latency stands in.
    latency_corpus_size: int = Field(100_000, gt=0)
    # Required improvement over the champion, in the metric's units (0.01 = one point of P@1).
    min_gain: float = Field(0.005, ge=0)
    # Two latencies count as equal within this fraction when the candidate's cost is compared with
    # the champion's (timings on a shared machine vary by more than a few percent between runs).
    latency_tolerance: float = Field(0.25, ge=0)

    @field_validator("served_budget")
    @classmethod
    def _budget(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and min(value) < 1:
            raise ValueError(f"served_budget must be null or [r_q, r_c] with both >= 1, got {list(value)}")
        return value

    @property
    def served_budget_name(self) -> str | None:
        return None if self.served_budget is None else f"{self.served_budget[0]}x{self.served_budget[1]}"
