from __future__ import annotations

import json
import re
import socket

import pytest
import yaml

from metaembed.config import load_root, load_section
from metaembed.registry.gate import ALREADY, PROMOTE, REJECT, promote
from metaembed.registry.names import BUDGETS_TAG
from metaembed.registry.params import PromotionParams
from metaembed.registry.register import register
from metaembed.registry.store import RegistryError

FALLBACK = "the sweep's synthetic index of 100,000 candidates (exhaustive scoring): the index stage did not run"


def gate(project, **kwargs):
    params = load_root(project.params_path)
    return promote(project.client(), project.model_name, params.promotion, index_dtype=params.index.dtype, **kwargs)


def set_promotion(project, **values) -> None:
    params = yaml.safe_load(project.params_path.read_text())
    params["promotion"].update(values)
    project.params_path.write_text(yaml.safe_dump(params))


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
        "served budget", "mmeb_p_at_1 @ 4x8", "index bytes/candidate (bfloat16)", "gain over champion",
        "cost vs champion"]


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

    assert (decision.outcome, decision.budget) == (REJECT, "none")  # 1x1 is too poor, 4x8 too big
    assert decision.reason == ("no budget is within every bound: 1x1: mmeb_p_at_1 0.3500 is more than 0.0200 below "
                               "the best 0.7000 (4x8); 4x8: index 8,192 B/candidate > maximum 4,096; latency from "
                               f"{FALLBACK} for this version")
    assert project.aliases() == {"challenger": "2", "champion": "1"}


def test_rerunning_the_gate_on_the_champion_changes_nothing(project):
    registered(project, 0, quality=0.5)
    gate(project)
    before = project.client().get_model_version(project.model_name, "1").tags
    decision = gate(project)

    assert decision.outcome == ALREADY
    assert [(c.name, c.value, c.passed) for c in decision.checks][-2:] == [
        ("gain over champion", "is the champion", True), ("cost vs champion", "is the champion", True)]
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
    assert "served at budget 4x8" in out and "0.2500" in out and "more than 0.0200 below" in out  # the 1x1 row
    assert project.aliases() == {"challenger": "1"}

    assert main(["promote", "--params", str(project.params_path)]) == 0
    assert "promoted v1" in capsys.readouterr().out
    assert project.aliases() == {"challenger": "1", "champion": "1"}


def test_the_cheapest_budget_within_the_quality_drop_is_served_and_described(project):
    registered(project, 0, quality=0.5, cheap_quality=0.49)  # 1x1 within max_quality_drop 0.02 of 4x8
    decision = gate(project)

    assert (decision.outcome, decision.budget) == (PROMOTE, "1x1")
    version = project.client().get_model_version(project.model_name, "1")
    assert version.tags["gate.budget"] == "1x1"
    description = version.description
    assert description.startswith("**Promotion gate: promote** (")
    assert "served budget **1x1**" in description and "every check passes at 1x1 (first champion)" in description
    assert re.search(r"\|\s*1x1\s*\|\s*0\.4900\s*\|\s*256\s*\|.*\|\s*\*\*served\*\*\s*\|", description)
    assert re.search(r"\|\s*4x8\s*\|\s*0\.5000\s*\|\s*2,048\s*\|.*eligible, not the cheapest", description)
    assert "Quality and cost per retrieval budget" in description  # the registration's full table stays below


def test_the_minimum_quality_applies_at_the_chosen_budget(project):
    # 4x8 (0.21) clears min_quality 0.2, but the cheaper 1x1 (0.195) is within the drop and is served.
    registered(project, 0, quality=0.21, cheap_quality=0.195)
    decision = gate(project)

    assert (decision.outcome, decision.budget) == (REJECT, "1x1")
    assert decision.reason.startswith("mmeb_p_at_1 0.1950 < minimum 0.2000 at 1x1;")
    assert "champion" not in project.aliases()


def test_with_the_index_stage_its_measured_latency_is_bounded_and_the_index_is_linked(project):
    from metaembed.registry.indexes import linked_indexes

    set_promotion(project, max_latency_ms=5.0)
    registered(project, 0, quality=0.5, index_ms=7.5)  # 4x8's measured two-stage ms/query
    decision = gate(project)

    assert (decision.outcome, decision.budget) == (REJECT, "none")
    assert "4x8: latency 7.5 ms/query > maximum 5" in decision.reason
    assert "did not run" not in decision.reason and decision.table.measured
    tags = project.client().get_model_version(project.model_name, "1").tags
    assert tags["gate.latency_source"].startswith("measured by the index stage: two-stage search (hnsw")
    [link] = linked_indexes(project.client(), project.model_name, "1").values()
    assert link["path"] == str((project.root / "artifacts" / "index" / "index").resolve())

    project.write_index(served_ms=2.5)  # re-timed, same model: the version's table is refreshed
    register(project.params_path, project.root)
    assert gate(project).promote


def test_without_the_index_stage_the_fallback_is_noted(project):
    set_promotion(project, max_latency_ms=1e6, latency_corpus_size=1000)
    registered(project, 0, quality=0.5, latency_ms=3.0)  # the sweep's synthetic ms/query at 4x8
    decision = gate(project)

    assert decision.promote
    latency = next(check for check in decision.checks if check.name.startswith("latency"))
    assert (latency.name, latency.value) == ("latency ms/query (sweep, 1,000 candidates)", "3")
    note = ("latency from the sweep's synthetic index of 1,000 candidates (exhaustive scoring): the index stage "
            "did not run for this version")
    assert decision.reason.endswith(note)
    version = project.client().get_model_version(project.model_name, "1")
    assert version.tags["gate.reason"].endswith(note) and "the index stage did not run" in version.description


def test_the_champion_is_beaten_only_at_equal_or_lower_cost(project):
    set_promotion(project, max_index_bytes_per_candidate=None)
    registered(project, 0, quality=0.5, cheap_quality=0.49)  # served at 1x1, 256 B/candidate
    assert gate(project).budget == "1x1"

    registered(project, 1, quality=0.7)  # far better, but only at 4x8: 2,048 B/candidate
    costly = gate(project)
    assert (costly.outcome, costly.budget, costly.champion_budget) == (REJECT, "4x8", "1x1")
    assert costly.reason.startswith("costlier than the champion: index 2,048 B/candidate > the champion's 256")
    assert project.aliases()["champion"] == "1"

    registered(project, 1, quality=0.8, cheap_quality=0.79)  # re-evaluated: better at the champion's own cost
    cheaper = gate(project)
    assert (cheaper.outcome, cheaper.budget) == (PROMOTE, "1x1")
    cost = next(check for check in cheaper.checks if check.name == "cost vs champion")
    assert cost.passed and cost.limit == "<= champion (latency +25%)"
    assert project.aliases()["champion"] == "2"


def test_a_pinned_served_budget_is_judged_there(project):
    set_promotion(project, served_budget=[1, 1], min_quality=0.0)
    registered(project, 0, quality=0.5)  # 1x1 at 0.25: far below 4x8, served anyway
    decision = gate(project)

    assert (decision.outcome, decision.budget) == (PROMOTE, "1x1")
    assert decision.choice.rule == "pinned by promotion.served_budget (1x1)"
