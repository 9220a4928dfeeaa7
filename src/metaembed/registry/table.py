"""What the registry reads from earlier stages: the training report and the sweep's budget table.

`artifacts/train/metrics.json` = {"mlflow_run_id": ..., "metrics": {...}} (the train stage) and
`artifacts/sweep/budgets.json` = {"mlflow_run_id", "quality_metric", "budgets": [row, ...]}
(the sweep stage), one row per retrieval budget with quality fractions and costs.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class TableError(ValueError):
    """An input file of the registry is missing or malformed; the message names file and key."""


class BudgetRow(BaseModel):
    model_config = ConfigDict(extra="allow")  # the sweep may record more than the gate reads

    name: str
    r_q: int = Field(ge=1)
    r_c: int = Field(ge=1)
    quality: dict[str, float]
    index_bytes_per_candidate: dict[str, int]
    flops_per_pair: int = Field(ge=0)
    latency_ms_per_query: dict[str, float]
    encode_per_second: dict[str, float] = {}
    pareto: bool = False

    @field_validator("quality")
    @classmethod
    def _fractions(cls, quality: dict[str, float]) -> dict[str, float]:
        for key, value in quality.items():
            if not 0 <= value <= 1:
                raise ValueError(f"{key}={value} is not a fraction in [0, 1]")
        return quality

    @property
    def budget(self) -> tuple[int, int]:
        return (self.r_q, self.r_c)


class BudgetTable(BaseModel):
    model_config = ConfigDict(extra="allow")

    mlflow_run_id: str = Field(min_length=1)
    quality_metric: str = Field(min_length=1)
    budgets: list[BudgetRow] = Field(min_length=1)

    def row(self, budget: tuple[int, int]) -> BudgetRow | None:
        return next((row for row in self.budgets if row.budget == tuple(budget)), None)

    def compact_json(self) -> str:
        """The table as one line of JSON, small enough for a model-version tag."""
        return self.model_dump_json(exclude_none=True)


def read_budget_table(path: str | Path) -> BudgetTable:
    return parse_budget_table(_read_json(path, "the sweep stage (`dvc repro sweep`)"), path)


def parse_budget_table(content: object, source: str | Path) -> BudgetTable:
    try:
        return BudgetTable.model_validate(content)
    except ValidationError as error:
        raise TableError(f"{source}: {_problems(error)}; re-run the sweep stage (`dvc repro sweep`)") from None


def read_train_run_id(path: str | Path) -> str:
    """The MLflow run id the train stage recorded in its metrics.json."""
    report = _read_json(path, "the train stage (`dvc repro train`)")
    run_id = report.get("mlflow_run_id") if isinstance(report, dict) else None
    if not isinstance(run_id, str) or not run_id:
        raise TableError(f"{path}: no `mlflow_run_id` string; re-run the train stage (`dvc repro train`)")
    return run_id


def _read_json(path: str | Path, producer: str):
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path} not found: it is written by {producer}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise TableError(f"{path}: not valid JSON ({error}); re-run {producer}") from None


def _problems(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in issue['loc']) or '(top level)'}: {issue['msg']}" for issue in error.errors()
    )
