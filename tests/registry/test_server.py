"""Register and promote on the team MLflow server (`metaembed services`), and what the gate does while
that server is down: the registry lives in PostgreSQL, so a restarted server has it all."""

import os
from unittest import mock

import pytest
from mlflow.tracking import MlflowClient

from metaembed.config import load_root, load_section
from metaembed.registry.gate import PROMOTE, promote
from metaembed.registry.params import PromotionParams
from metaembed.registry.register import register
from metaembed.registry.store import RegistryError
from metaembed.services import stack


def _gate(project):
    params = load_root(project.params_path)
    return promote(project.client(), project.model_name, params.promotion, index_dtype=params.index.dtype)


def test_promotion_on_the_server_stops_while_it_is_down_and_resumes_after_a_restart(server_project, services):
    project = server_project
    project.train(0, quality=0.5)
    assert register(project.params_path, project.root).version == "1"
    assert _gate(project).outcome == PROMOTE
    assert project.aliases() == {"challenger": "1", "champion": "1"}
    source = project.client().get_model_version(project.model_name, "1").source
    assert source.startswith(("models:/", "mlflow-artifacts:/")), source  # stored by the server, not on this disk
    project.train(1, quality=0.9)  # would be promoted
    assert register(project.params_path, project.root).version == "2"

    assert stack.stop_server(services, stack.MLFLOW) == "stopped"
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"}
    try:
        params = load_section("promotion", PromotionParams, project.params_path)
        down = MlflowClient(tracking_uri=services.tracking_uri, registry_uri=services.tracking_uri)
        with mock.patch.dict(os.environ, quick), pytest.raises(
                RegistryError, match=f"failed against the registry at {services.tracking_uri}.*no alias was changed"):
            promote(down, project.model_name, params)
    finally:
        assert stack.start_server(services, stack.MLFLOW) == "started"

    assert project.aliases() == {"challenger": "2", "champion": "1"}
    decision = _gate(project)
    assert (decision.outcome, decision.candidate, decision.champion) == (PROMOTE, "2", "1")
    assert project.aliases() == {"challenger": "2", "champion": "2"}
