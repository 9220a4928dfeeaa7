"""params.yaml `tune:` (see docs/tuning.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from metaembed.evaluation.params import QUALITY_METRICS, Budget, _check_budgets


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _range(low: float, high: float, name: str) -> None:
    if not 0 < low <= high:
        raise ValueError(f"{name}: expected [low, high] with 0 < low <= high, got [{low}, {high}]")


class SpaceParams(_Strict):
    """The search space. Group sizes come from the ladders; the last group is always the full size."""

    num_groups: tuple[int, int] = (2, 5)  # [min, max] groups, the full one included
    # Allowed r_q / r_c of the smaller groups; null: powers of two below model.num_query_meta /
    # num_candidate_meta. Sizes at or above the full size are ignored (the full group is implicit).
    query_sizes: list[int] | None = None
    candidate_sizes: list[int] | None = None
    weight: tuple[float, float] = (0.25, 2.0)  # log-uniform weight of each smaller group (full group: 1.0)
    temperature: tuple[float, float] = (0.02, 0.1)  # log-uniform
    lr: tuple[float, float] = (3e-4, 3e-3)  # log-uniform

    @model_validator(mode="after")
    def _ranges(self) -> "SpaceParams":
        low, high = self.num_groups
        if not 1 <= low <= high:
            raise ValueError(f"num_groups: expected [min, max] with 1 <= min <= max, got [{low}, {high}]")
        for name in ("weight", "temperature", "lr"):
            _range(*getattr(self, name), name)
        for name in ("query_sizes", "candidate_sizes"):
            sizes = getattr(self, name)
            if sizes is not None and (not sizes or min(sizes) < 1):
                raise ValueError(f"{name}: give positive sizes, e.g. [1, 2, 4, 8], or null for powers of two")
        return self


class PruningParams(_Strict):
    enabled: bool = True  # single-objective studies only (Optuna cannot prune multi-objective trials)
    startup_trials: int = Field(2, ge=0)  # MedianPruner: no pruning until this many trials finished
    warmup_steps: int = Field(0, ge=0)  # nor before this training step


class TuneParams(_Strict):
    study_name: str = Field("metaembed-groups", min_length=1)
    out_dir: str = "artifacts/tune"
    # null: a journal file <out_dir>/<study_name>.journal (one machine, many processes);
    # an RDB URL (sqlite:///..., postgresql://user@host/db) for workers on many machines.
    storage: str | None = None
    # RDB storage only: a worker beats every heartbeat_interval_s; a RUNNING trial silent for
    # heartbeat_grace_s is marked FAILED (its worker died) and retried once by the next worker.
    heartbeat_interval_s: int = Field(60, gt=0)
    heartbeat_grace_s: int = Field(300, gt=0)
    # single: maximise the mean quality over `budgets` (area under the quality-vs-budget curve);
    # multi: maximise quality at the smallest and at the largest budget; reports the Pareto front.
    mode: Literal["single", "multi"] = "single"
    quality_metric: str = "mmeb_p_at_1"
    budgets: list[Budget] | None = None  # null: evaluate.budgets
    eval_queries_per_subset: int | None = Field(50, gt=0)  # null: every query (slow)
    eval_candidates_per_query: int | None = Field(20, ge=2)  # positive + twins + negatives; null: all K
    sampler_seed: int | None = 0
    # The first trial of a new study runs params.yaml's own loss.groups/temperature and train.lr
    # (when they lie in the space), so "does tuning beat the default" is answered on equal terms.
    enqueue_current: bool = True
    keep_checkpoints: bool = False  # a finished trial's Lightning checkpoints are deleted
    pruning: PruningParams = PruningParams()
    train: dict[str, Any] = Field(default_factory=lambda: {"max_steps": 150, "val_every_n_steps": 50,
                                                           "checkpoint_every_n_steps": 50})
    space: SpaceParams = SpaceParams()

    @field_validator("quality_metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value not in QUALITY_METRICS:
            raise ValueError(f"{value!r} is not one of {list(QUALITY_METRICS)}")
        return value

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, value: list[Budget] | None) -> list[Budget] | None:
        return None if value is None else _check_budgets(value)

    @field_validator("train")
    @classmethod
    def _train(cls, value: dict[str, Any]) -> dict[str, Any]:
        banned = {"output_dir", "report_dir", "checkpoint_dir", "lr"} & set(value)
        if banned:
            raise ValueError(f"{sorted(banned)} are set per trial; remove them from tune.train")
        return value

    def storage_url(self, root: str = ".") -> str:
        """What optuna-dashboard and other workers open."""
        from pathlib import Path

        return self.storage or str(Path(root) / self.out_dir / f"{self.study_name}.journal")
