"""What one DVC stage writes for the next ones to read: one pydantic model per file.

The writing stage builds the file through its model and `write`s it; every reader calls `read`.
A file that drifts from its writer then fails where it is read, naming the file, the key and
the stage to re-run, instead of as a KeyError (or a silently wrong number) further on.

    TrainReport     artifacts/train/metrics.json     train -> evaluate, sweep (their MLflow run), register
    EvaluateReport  artifacts/evaluate/report.json   evaluate -> baselines
    SweepBudgets    artifacts/sweep/budgets.json     sweep -> index, register -> the promotion gate (a version tag)
    IndexLatency    artifacts/index/latency.json     index -> register -> the promotion gate (a version tag)

The paths shown are the defaults; writer and readers take them from params.yaml, through
`metaembed.config.ParamsRoot.train_report_path`, `.budgets_path` and `.index_latency_path`.

The other outputs (the evaluate, sweep and index metrics.json, the sweep's latency.json,
plot_data.json) are read only by DVC and by people.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class StageOutputError(ValueError):
    """A stage output is not what its stage writes; the message names the file, key and stage to re-run."""


class MissingStageOutput(StageOutputError, FileNotFoundError):
    """A stage output is not there: its stage has not run (here)."""


class _Contract(BaseModel):
    # A key the writer does not write is a typo or another version's file: refuse it.
    # NaN (a diverged loss) is written as JSON's usual NaN, as json.dumps would.
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")


class StageOutput(_Contract):
    # For the messages: what makes the file when it is missing, and what to re-run when it is bad.
    MISSING: ClassVar[str] = "run its stage first"
    RERUN: ClassVar[str] = "re-run its stage"

    @classmethod
    def read(cls, path: str | Path) -> Self:
        path = Path(path)
        if not path.is_file():
            raise MissingStageOutput(f"{path} not found: {cls.MISSING}")
        return cls.parse(path.read_text(), path)

    @classmethod
    def parse(cls, text: str, source: str | Path) -> Self:
        """The model from JSON text; `source` names where the text came from in errors."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as error:
            raise StageOutputError(f"{source}: {problems(error)}; {cls.RERUN}") from None

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=1) + "\n")
        return path


def problems(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(part) for part in issue['loc']) or '(top level)'}: {issue['msg']}"
                     for issue in error.errors())


# train ---------------------------------------------------------------------------------------------
class TrainReport(StageOutput):
    """artifacts/train/metrics.json: the training's MLflow run and its final metrics (DVC metrics)."""

    MISSING: ClassVar[str] = "train first (`metaembed train` or `dvc repro train`)"
    RERUN: ClassVar[str] = "re-run the train stage (`dvc repro train`)"

    mlflow_run_id: str = Field(min_length=1)  # later stages log onto this run
    # Read by DVC and people only: a report that carries just the run still serves every reader.
    metrics: dict[str, float | int] = Field(default_factory=dict)


# evaluate ------------------------------------------------------------------------------------------
class BudgetShape(_Contract):
    r_q: int = Field(ge=1)
    r_c: int = Field(ge=1)
    vectors: dict[str, float]  # mean vectors scored per side (token-level: the mean length)


class ModelShape(_Contract):
    pooling: str
    dim: int = Field(ge=1)


class EvaluateReport(StageOutput):
    """artifacts/evaluate/report.json: every subset and set at every budget, with counts and timings."""

    MISSING: ClassVar[str] = "evaluate first (`metaembed evaluate` or `dvc repro evaluate`)"
    RERUN: ClassVar[str] = "re-run the evaluate stage (`dvc repro evaluate`)"

    budgets: dict[str, BudgetShape]  # budget name -> what it scores
    summary: dict[str, dict[str, float]]  # budget -> metric -> value (fractions)
    chance: dict[str, float]  # metric -> what a random ranking scores
    mmeb: dict[str, dict[str, dict[str, float | int]]]  # budget -> subset -> metric or count
    vidore: dict[str, dict[str, dict[str, float | int]]]  # budget -> set -> metric or count
    sets: dict[str, Any]  # what was scored: sources, subsets, sets, encoded inputs
    model: ModelShape
    seconds: dict[str, float]
    model_dir: str
    mlflow_run_id: str | None  # the training run it was logged onto; None without MLflow


# sweep ---------------------------------------------------------------------------------------------
class BudgetRow(_Contract):
    """Quality and cost of one retrieval budget (r_q query and r_c candidate vectors)."""

    name: str = Field(min_length=1)  # "<r_q>x<r_c>", or "tokens" for token-level models
    r_q: int = Field(ge=1)
    r_c: int = Field(ge=1)
    quality: dict[str, float | None]  # metric -> fraction; None where the suite has no such set
    index_bytes_per_candidate: dict[str, int]  # dtype -> bytes
    flops_per_pair: int = Field(ge=0)
    latency_ms_per_query: dict[str, float]  # str(synthetic index size) -> ms per query
    encode_per_second: dict[str, float]  # side -> inputs encoded per second
    pareto: bool = False  # on the quality/cost frontier of the sweep

    @field_validator("quality")
    @classmethod
    def _fractions(cls, quality: dict[str, float | None]) -> dict[str, float | None]:
        for key, value in quality.items():
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"{key}={value} is not a fraction in [0, 1]")
        return quality

    @property
    def budget(self) -> tuple[int, int]:
        return (self.r_q, self.r_c)


class SweepBudgets(StageOutput):
    """artifacts/sweep/budgets.json: one row per budget; registration copies it onto the model version."""

    MISSING: ClassVar[str] = "run the sweep first (`metaembed sweep` or `dvc repro sweep`)"
    RERUN: ClassVar[str] = "re-run the sweep stage (`dvc repro sweep`)"

    mlflow_run_id: str | None  # the training run the sweep measured and logged onto; None without MLflow
    quality_metric: str = Field(min_length=1)  # what `pareto` (and by default the gate) ranks by
    budgets: list[BudgetRow] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct_budgets(self) -> Self:
        names = [row.name for row in self.budgets]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"budget(s) {repeated} appear more than once")
        return self

    def row(self, budget: tuple[int, int]) -> BudgetRow | None:
        return next((row for row in self.budgets if row.budget == tuple(budget)), None)

    def compact_json(self) -> str:
        """The table as one line of JSON, small enough for a model-version tag."""
        return self.model_dump_json()


# index ---------------------------------------------------------------------------------------------
class IndexBudgetLatency(_Contract):
    """Search time per query at one budget on the built index (medians of single-query searches)."""

    name: str = Field(min_length=1)  # the sweep's budget name
    r_q: int = Field(ge=1)
    r_c: int = Field(ge=1)
    index_bytes_per_candidate: int = Field(ge=0)  # the r_c vectors a search reads, in the index's dtype
    exhaustive_ms: float = Field(ge=0)
    two_stage_ms: float | None = Field(None, ge=0)  # None: the index has no first stage
    recall_at_k: float | None = Field(None, ge=0, le=1)  # two-stage top-k's share of the exhaustive top-k


class BuiltIndex(_Contract):
    path: str = Field(min_length=1)  # the index folder, as params.yaml names it
    manifest_sha256: str = Field(min_length=64, max_length=64)  # its manifest.json, which lists every file's sha256
    candidates: int = Field(ge=1)
    vectors: int = Field(ge=1)  # R_c stored per candidate
    dim: int = Field(ge=1)
    dtype: str = Field(min_length=1)
    first_stage: str | None
    built_at: str
    build_s: float = Field(ge=0)


class IndexLatency(StageOutput):
    """artifacts/index/latency.json: the served index of the evaluation corpus and its search latency
    per budget; registration copies it onto the model version and the gate reads it from there."""

    MISSING: ClassVar[str] = "run the index stage first (`metaembed index stage` or `dvc repro index`)"
    RERUN: ClassVar[str] = "re-run the index stage (`dvc repro index`)"

    model_sha256: str = Field(min_length=64, max_length=64)  # registry.digest.folder_sha256 of the model indexed
    sweep_run_id: str | None  # the mlflow_run_id of the budgets.json whose budgets were timed
    index: BuiltIndex
    k: int = Field(ge=1)
    first_stage_k: int | None = Field(None, ge=1)  # None: exhaustive search only
    queries: int = Field(ge=1)
    repeats: int = Field(ge=1)
    threads: int = Field(ge=1)
    other_cores: float | None  # cores other processes kept busy while timing (None: unknown)
    machine: dict[str, str | int]
    budgets: list[IndexBudgetLatency] = Field(min_length=1)

    @property
    def search(self) -> str:
        """How the served index searches, in words."""
        if self.first_stage_k is None:
            return "exhaustive search"
        return f"two-stage search ({self.index.first_stage}, first_stage_k={self.first_stage_k})"

    def row(self, name: str) -> IndexBudgetLatency | None:
        return next((row for row in self.budgets if row.name == name), None)

    def compact_json(self) -> str:
        """One line of JSON, small enough for a model-version tag."""
        return self.model_dump_json()
