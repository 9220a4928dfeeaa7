from __future__ import annotations

import json
import socket

import pytest

from metaembed.config import load_section
from metaembed.registry.gate import ALREADY, PROMOTE, REJECT, evaluate, promote
from metaembed.registry.names import BUDGETS_TAG
from metaembed.registry.params import PromotionParams
from metaembed.registry.register import register
from metaembed.registry.store import RegistryError


def gate(project, **kwargs):
    params = load_section("promotion", PromotionParams, project.params_path)
    return promote(project.client(), project.model_name, params, **kwargs)


def registered(project, model: int, quality: float, **table) -> str:
    project.train(model, quality, **table)
    return register(project.params_path, project.root).version


def test_the_first_good_model_becomes_champion(project):
    registered(project, 0, quality=0.5)
    decision = gate(project)

    assert (decision.outcome, decision.candidate, decision.champion) == (PROMOTE, "1", None)
    assert "first champion" in decision.reason
    assert project.aliases() == {"challenger": "1", "champion": "1"}
    tags = project.client().get_model_version(project.model_name, "1").tags
    assert (tags["gate.decision"], tags["gate.champion_before"], tags["gate.budget"]) == ("promoted", "none", "4x8")
    assert [check["name"] for check in json.loads(tags["gate.checks"])] == [
        "mmeb_p_at_1 @ 4x8", "index bytes/candidate (bfloat16)", "gain over champion"]


def test_a_first_model_below_the_minimum_quality_stays_out(project):
    registered(project, 0, quality=0.1)
    decision = gate(project)

    assert decision.outcome == REJECT
    assert "mmeb_p_at_1 0.1000 < minimum 0.2000" in decision.reason
    assert project.aliases() == {"challenger": "1"}


def test_a_better_model_takes_over(project):
    registered(project, 0, quality=0.5)
    gate(project)
    registered(project, 1, quality=0.6)
    decision = gate(project)

    assert (decision.outcome, decision.candidate, decision.champion) == (PROMOTE, "2", "1")
    assert project.aliases() == {"challenger": "2", "champion": "2"}
    gain = next(check for check in decision.checks if check.name == "gain over champion")
    assert (gain.value, gain.champion) == ("+0.1000", "0.5000")
    assert project.client().get_model_version(project.model_name, "2").tags["gate.champion_before"] == "1"


def test_a_worse_model_is_rejected_and_the_champion_stays(project):
    registered(project, 0, quality=0.5)
    gate(project)
    registered(project, 1, quality=0.45)
    decision = gate(project)

    assert decision.outcome == REJECT
    assert "gain -0.0500 over the champion < minimum +0.0100" in decision.reason
    assert project.aliases() == {"challenger": "2", "champion": "1"}
    tags = project.client().get_model_version(project.model_name, "2").tags
    assert tags["gate.decision"] == "rejected" and tags["gate.reason"] == decision.reason


def test_a_better_but_too_costly_model_is_rejected(project):
    registered(project, 0, quality=0.5)
    gate(project)
    registered(project, 1, quality=0.7, index_bytes=8192)  # 8 KiB per candidate at 4x8, bound 4 KiB
    decision = gate(project)

    assert decision.outcome == REJECT
    assert decision.reason == "index 8,192 B/candidate (bfloat16) > maximum 4,096"
    assert project.aliases() == {"challenger": "2", "champion": "1"}


def test_rerunning_the_gate_on_the_champion_changes_nothing(project):
    registered(project, 0, quality=0.5)
    gate(project)
    before = project.client().get_model_version(project.model_name, "1").tags
    decision = gate(project)

    assert decision.outcome == ALREADY
    assert [(c.name, c.value, c.passed) for c in decision.checks][-1] == ("gain over champion", "is the champion", True)
    assert project.client().get_model_version(project.model_name, "1").tags == before


def test_dry_run_decides_without_writing(project):
    registered(project, 0, quality=0.5)
    decision = gate(project, dry_run=True)

    assert decision.outcome == PROMOTE
    assert project.aliases() == {"challenger": "1"}
    assert not any(key.startswith("gate.") for key in project.client().get_model_version(project.model_name, "1").tags)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_registry_stops_the_gate_and_no_alias_changes(project, monkeypatch):
    from mlflow.tracking import MlflowClient

    registered(project, 0, quality=0.5)
    gate(project)
    registered(project, 1, quality=0.9)  # would be promoted
    before = project.aliases()

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    down = f"http://127.0.0.1:{closed_port()}"
    params = load_section("promotion", PromotionParams, project.params_path)
    with pytest.raises(RegistryError, match=f"reading .* failed against the registry at {down}.*no alias was changed"):
        promote(MlflowClient(tracking_uri=down, registry_uri=down), project.model_name, params)

    assert project.aliases() == before == {"challenger": "2", "champion": "1"}
    assert "gate.decision" not in project.client().get_model_version(project.model_name, "2").tags


def test_a_registry_that_fails_while_moving_the_alias_leaves_the_champion(project):
    registered(project, 0, quality=0.5)
    gate(project)
    registered(project, 1, quality=0.9)

    class Flaky:  # reads work, the alias write hits a dropped connection
        def __init__(self, client):
            self._client = client

        def __getattr__(self, name):
            return getattr(self._client, name)

        def set_registered_model_alias(self, *args):
            raise ConnectionError("connection reset by peer")

    params = load_section("promotion", PromotionParams, project.params_path)
    with pytest.raises(RegistryError, match="moving champion to v2 failed.*champion still points at v1"):
        promote(Flaky(project.client()), project.model_name, params)
    assert project.aliases() == {"challenger": "2", "champion": "1"}


def test_a_missing_budget_or_latency_fails_its_check(measured):
    table = measured(0.5, latency_ms=5.0)
    params = PromotionParams(budget=(16, 64), max_index_bytes_per_candidate=4096)
    [check] = evaluate(table, None, params, has_champion=False)
    assert not check.passed and check.failure == "budget 16x64 was not evaluated (have: 1x1, 4x8)"

    params = PromotionParams(budget=(4, 8), max_latency_ms=10, latency_corpus_size=1_000_000)
    latency = evaluate(table, None, params, has_champion=False)[1]
    # The sizes the fixture's sweep timed.
    assert not latency.passed and "no latency measured at 1,000,000 candidates (have: 100, 1000)" == latency.failure

    params = PromotionParams(budget=(4, 8), max_latency_ms=4.0, latency_corpus_size=1000)
    latency = evaluate(table, None, params, has_champion=False)[1]
    assert (latency.value, latency.passed) == ("5", False)


def test_an_unreadable_budget_table_is_named_in_the_rejection(project):
    version = registered(project, 0, quality=0.5)
    client = project.client()
    client.set_model_version_tag(project.model_name, version, BUDGETS_TAG, '{"budgets": []}')  # not a sweep table
    decision = gate(project)

    assert decision.outcome == REJECT and project.aliases() == {"challenger": "1"}
    assert decision.reason.startswith("v1 tag metaembed.budgets: mlflow_run_id: Field required; ")
    assert decision.reason.endswith("re-run the sweep stage (`dvc repro sweep`), then `metaembed register`")

    client.delete_model_version_tag(project.model_name, version, BUDGETS_TAG)
    assert gate(project).reason == "v1 has no metaembed.budgets tag: register it with `metaembed register`"


def test_the_promote_command_prints_the_decision_table(project, capsys):
    from metaembed.cli import main

    registered(project, 0, quality=0.5)
    assert main(["promote", "--dry-run", "--params", str(project.params_path)]) == 0
    out = capsys.readouterr().out
    assert "would promote" in out and "mmeb_p_at_1 @ 4x8" in out and "0.5000" in out
    assert project.aliases() == {"challenger": "1"}

    assert main(["promote", "--params", str(project.params_path)]) == 0
    assert "promoted v1" in capsys.readouterr().out
    assert project.aliases() == {"challenger": "1", "champion": "1"}
