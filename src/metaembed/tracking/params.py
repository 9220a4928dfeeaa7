"""params.yaml `tracking:`, apart from the MLflow code so that validating params needs no mlflow."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TrackingParams(BaseModel):
    """params.yaml `tracking:`. Relative paths are resolved against the project root."""

    model_config = ConfigDict(extra="forbid")

    tracking_uri: str = Field("sqlite:///mlflow.db", min_length=1)
    artifact_location: str = Field("mlartifacts", min_length=1)
    experiment: str = Field("metaembed", min_length=1)
    system_metrics: bool = True
    # A tracking server gets this long, retries included, to answer the first request of a
    # process; mlflow alone retries a refused connection for about 4 minutes.
    server_timeout_s: int = Field(30, ge=6)
