"""params.yaml `evaluate:`, `sweep:` and `baselines:` (see docs/evaluation.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Budget = tuple[int, int]
DEFAULT_BUDGETS: list[Budget] = [(1, 1), (2, 4), (4, 8), (8, 16), (16, 64)]
QUALITY_METRICS = ("mmeb_p_at_1", "vidore_ndcg_at_5")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_budgets(budgets: list[Budget]) -> list[Budget]:
    if not budgets:
        raise ValueError("give at least one budget [r_q, r_c]")
    for r_q, r_c in budgets:
        if r_q < 1 or r_c < 1:
            raise ValueError(f"budget [{r_q}, {r_c}]: r_q and r_c must be >= 1")
    seen = set()
    for budget in budgets:
        if tuple(budget) in seen:
            raise ValueError(f"budget {list(budget)} is listed twice")
        seen.add(tuple(budget))
    return [tuple(b) for b in budgets]


class EvaluateParams(_Strict):
    # The model and the training run it logs onto come from `train:` (ParamsRoot.model_dir, .train_report_path).
    out_dir: str = "artifacts/evaluate"
    budgets: list[Budget] = Field(default_factory=lambda: list(DEFAULT_BUDGETS))
    batch_size: int = Field(64, gt=0)
    recall_at: list[int] = Field(default_factory=lambda: [1, 5, 10])
    num_threads: int | None = Field(None, ge=1)
    # Keep the full-size embeddings (safetensors) so the sweep re-scores without re-encoding.
    cache_embeddings: bool = True
    log_to_mlflow: bool = True

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, value: list[Budget]) -> list[Budget]:
        return _check_budgets(value)

    @field_validator("recall_at")
    @classmethod
    def _positive_cutoffs(cls, value: list[int]) -> list[int]:
        if not value or any(k < 1 for k in value):
            raise ValueError("recall_at needs cutoffs >= 1, e.g. [1, 5, 10]")
        return sorted(set(value))


class LatencyParams(_Strict):
    # Synthetic index sizes N; budgets.json reports latency_ms_per_query under str(N).
    candidates: list[int] = Field(default_factory=lambda: [10_000, 100_000])
    query_batch: int = Field(1, gt=0)  # queries scored per maxsim call; 1 is online latency
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    repeats: int = Field(5, gt=0)
    warmup: int = Field(1, ge=0)
    # Refuse a synthetic index above this size (a real backbone's D makes 100k x 64 huge).
    max_index_gib: float = Field(6.0, gt=0)
    # Wait at most this long for other processes to go idle before timing (0: never wait).
    quiet_wait_s: float = Field(5.0, ge=0)
    flush_mib: int = Field(64, ge=0)  # read before each repeat to evict the index from cache
    seed: int = 0

    @field_validator("candidates")
    @classmethod
    def _sizes(cls, value: list[int]) -> list[int]:
        if not value or any(n < 1 for n in value):
            raise ValueError("candidates needs index sizes >= 1, e.g. [10000, 100000]")
        return value


class SweepParams(_Strict):
    out_dir: str = "artifacts/sweep"
    budgets: list[Budget] = Field(default_factory=lambda: list(DEFAULT_BUDGETS))
    # What the Pareto frontier and the promotion gate read as "quality".
    quality_metric: Literal["mmeb_p_at_1", "vidore_ndcg_at_5"] = "mmeb_p_at_1"
    latency: LatencyParams = Field(default_factory=LatencyParams)
    encode_sample: int = Field(64, gt=0)  # items per side timed at each budget
    log_to_mlflow: bool = True

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, value: list[Budget]) -> list[Budget]:
        return _check_budgets(value)


DEFAULT_VARIANTS: dict[str, dict[str, Any]] = {
    "metaembed": {},
    "metaembed_no_mmr": {"loss.mmr": False},
    "single_vector": {"model.pooling": "last"},
    "token_level": {"model.pooling": "tokens", "model.centering": False},
}


class BaselinesParams(_Strict):
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    out_dir: str = "artifacts/baselines"
    results_doc: str = "docs/results.md"
    # name -> params.yaml overrides as {"section.key": value}; everything else is shared.
    variants: dict[str, dict[str, Any]] = Field(default_factory=lambda: dict(DEFAULT_VARIANTS))

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        if not value or len(set(value)) != len(value):
            raise ValueError("seeds must be a non-empty list without repeats")
        return value

    @field_validator("variants")
    @classmethod
    def _variants(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        if not value:
            raise ValueError("give at least one variant")
        for name, overrides in value.items():
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"variant name {name!r}: use letters, digits, '_' or '-' (it names a folder)")
            for key in overrides or {}:
                if "." not in key:
                    raise ValueError(f"variant {name}: override {key!r} must be 'section.key'")
        return {name: dict(overrides or {}) for name, overrides in value.items()}


def budget_name(budget: Budget) -> str:
    return f"{budget[0]}x{budget[1]}"
