"""A searcher over the plain index (tests/conftest.py) and, for the tests that need the registry,
the model registered in a temporary MLflow store with a quality/cost table.

Loading the tiny model costs a second or two, so the model, the index and its searcher are built
once per session and shared; a test that changes a model or an index copies it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def searcher(plain_index):
    from metaembed.serving.searcher import Searcher

    return Searcher.open(plain_index)


@dataclass
class Registered:
    params_path: Path
    name: str
    version: str
    table: object  # SweepBudgets stored on the version


@pytest.fixture(scope="module")
def registered(tmp_path_factory, saved_model) -> Registered:
    """saved_model registered as `registration` does, alias champion, with a two-row budget table."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from metaembed.registry.params import RegistryParams
    from metaembed.registry.register import Inputs, register_model
    from metaembed.stage_outputs import SweepBudgets
    from metaembed.tracking import TrackingParams, configure

    root = tmp_path_factory.mktemp("registry")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["tracking"].update(tracking_uri=f"sqlite:///{root}/mlflow.db", artifact_location=str(root / "mlartifacts"),
                              experiment="serving-tests", system_metrics=False)
    params_path = root / "params.yaml"
    params_path.write_text(yaml.safe_dump(params))
    tracking = TrackingParams.model_validate(params["tracking"])
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        experiment = configure(tracking, root)
        client = MlflowClient(tracking_uri=tracking.tracking_uri, registry_uri=tracking.tracking_uri)
        run_id = client.create_run(experiment, run_name="train").info.run_id
        client.set_terminated(run_id)
        table = SweepBudgets(mlflow_run_id=run_id, quality_metric="mmeb_p_at_1", budgets=[
            _row(1, 1, 0.31, 2 * 128), _row(4, 8, 0.52, 8 * 2 * 128), _row(16, 64, 0.6, 64 * 2 * 128)])
        name = "serving-tests"
        registration = register_model(client, Inputs(RegistryParams(model_name=name), tracking, saved_model,
                                                     run_id, table))
        client.set_registered_model_alias(name, "champion", registration.version)
        yield Registered(params_path, name, registration.version, table)
    # configure() and the loader set them process-wide: leave them as other modules expect them.
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def _row(r_q: int, r_c: int, quality: float, index_bytes: int):
    from metaembed.stage_outputs import BudgetRow

    return BudgetRow(name=f"{r_q}x{r_c}", r_q=r_q, r_c=r_c, quality={"mmeb_p_at_1": quality},
                     index_bytes_per_candidate={"bfloat16": index_bytes}, flops_per_pair=2 * r_q * r_c * 128,
                     latency_ms_per_query={"1000": 0.5 * r_c}, encode_per_second={"query": 10.0, "candidate": 5.0})
