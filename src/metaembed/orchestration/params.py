"""params.yaml `pipeline:`: the stages the pipeline flow runs, its retries and its schedule."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ScheduleParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deployment: str = Field("nightly", min_length=1)
    cron: str = Field("0 3 * * *", min_length=9)
    timezone: str = "UTC"
    port: int = Field(4200, gt=0, lt=65536)  # the local Prefect server flows/serve.py starts


class PipelineParams(BaseModel):
    """params.yaml `pipeline:`."""

    model_config = ConfigDict(extra="forbid")

    stages: list[str] = Field(["prepare", "pretrain", "train", "evaluate", "sweep", "index"], min_length=1)
    retries: int = Field(2, ge=0)  # for transient failures only (TRANSIENT_MARKERS, registry errors)
    retry_delay_seconds: list[float] = Field([10.0, 60.0], min_length=1)  # back-off, one per retry
    promote: bool = True  # false: the gate only reports (a dry run)
    schedule: ScheduleParams = ScheduleParams()
