"""The promotion gate: `champion` moves to a version only when it is good enough and worth its cost.

At the budget the product serves (params.yaml `promotion:`) the candidate must reach the minimum
quality, stay within the cost bounds (index bytes per candidate, latency) and beat the current
champion by the minimum gain. Quality and cost come from the `metaembed.budgets` tag each version
got at registration, so any two versions can be compared later, whatever is on disk.

Everything is read before anything is written, and the alias is one write: when the registry
cannot be reached the gate stops with a RegistryError and no alias has changed. The decision is
written on the candidate version as `gate.*` tags (promoted or rejected, and why).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from metaembed.registry.names import (BUDGETS_TAG, CHALLENGER, CHAMPION, GATE_BUDGET_TAG, GATE_CHAMPION_BEFORE_TAG,
                                      GATE_CHECKS_TAG, GATE_DECISION_TAG, GATE_METRIC_TAG, GATE_REASON_TAG)
from metaembed.registry.params import PromotionParams
from metaembed.registry.store import RegistryError, is_missing, reaching
from metaembed.stage_outputs import BudgetRow, StageOutputError, SweepBudgets

PROMOTE, REJECT, ALREADY = "promote", "reject", "already champion"
NONE = "-"
GAIN = "gain over champion"


@dataclass(frozen=True)
class Check:
    name: str
    value: str
    limit: str
    champion: str
    passed: bool
    failure: str = ""  # why it failed, in words


@dataclass(frozen=True)
class Decision:
    model_name: str
    candidate: str
    champion: str | None
    budget: str
    metric: str
    outcome: str
    reason: str
    checks: tuple[Check, ...]

    @property
    def promote(self) -> bool:
        return self.outcome == PROMOTE

    def tags(self) -> dict[str, str]:
        return {
            GATE_DECISION_TAG: "promoted" if self.promote else "rejected",
            GATE_REASON_TAG: self.reason,
            GATE_CHAMPION_BEFORE_TAG: self.champion or "none",
            GATE_BUDGET_TAG: self.budget,
            GATE_METRIC_TAG: self.metric,
            GATE_CHECKS_TAG: json.dumps([asdict(check) for check in self.checks]),
        }


def promote(client: MlflowClient, name: str, params: PromotionParams, version: str | None = None,
            dry_run: bool = False) -> Decision:
    """Decide for `version` (default: the `challenger`) and, unless dry_run, act on it."""
    decision = decide(client, name, params, version)
    if not dry_run:
        apply(client, decision)
    return decision


def decide(client: MlflowClient, name: str, params: PromotionParams, version: str | None = None) -> Decision:
    candidate, champion = _read(client, name, version)
    same = champion is not None and str(champion.version) == str(candidate.version)
    rival = None if same else champion
    table, unreadable = _table(candidate)
    checks = evaluate(table, _table(rival)[0] if rival else None, params, rival is not None, unreadable)
    if same:  # nothing to beat: show the bounds, and say why there is no gain to check
        checks = [Check(c.name, "is the champion", c.limit, NONE, True) if c.name == GAIN else c for c in checks]
    failures = [check.failure for check in checks if not check.passed]
    if same:
        outcome, reason = ALREADY, f"v{candidate.version} is already the {CHAMPION}"
    elif failures:
        outcome, reason = REJECT, "; ".join(failures)
    else:
        outcome = PROMOTE
        reason = "every check passes" + ("" if champion else f" (first {CHAMPION})")
    return Decision(name, str(candidate.version), str(champion.version) if champion else None,
                    params.budget_name, params.quality_metric, outcome, reason, tuple(checks))


def apply(client: MlflowClient, decision: Decision) -> None:
    if decision.outcome == ALREADY:
        return
    uri, name, version = client.tracking_uri, decision.model_name, decision.candidate
    before = f"v{decision.champion}" if decision.champion else "no version"
    if decision.promote:
        with reaching(uri, f"moving {CHAMPION} to v{version}", f"{CHAMPION} still points at {before}"):
            client.set_registered_model_alias(name, CHAMPION, version)
    now = f"v{version}" if decision.promote else before
    with reaching(uri, f"writing the gate's decision on v{version}", f"{CHAMPION} points at {now}"):
        for key, value in decision.tags().items():
            client.set_model_version_tag(name, version, key, value)


def evaluate(candidate: SweepBudgets | None, champion: SweepBudgets | None, params: PromotionParams,
             has_champion: bool, unreadable: str = "") -> list[Check]:
    """The gate's checks, each with the candidate's value, the bound and the champion's value.

    `unreadable` says why the candidate has no table (None), for the failed check.
    """
    budget = params.budget_name
    if candidate is None:
        return [Check("budget evaluated", "missing", budget, NONE, False, unreadable or "no quality table")]
    row = candidate.row(params.budget)
    if row is None:
        found = ", ".join(r.name for r in candidate.budgets)
        return [Check("budget evaluated", "missing", budget, NONE, False,
                      f"budget {budget} was not evaluated (have: {found})")]
    best = champion.row(params.budget) if champion else None
    checks = [_quality(row, best, params)]
    if params.max_index_bytes_per_candidate is not None:
        checks.append(_index_bytes(row, best, params))
    if params.max_latency_ms is not None:
        checks.append(_latency(row, best, params))
    checks.append(_gain(row, best, params, has_champion))
    return checks


def _quality(row: BudgetRow, best: BudgetRow | None, params: PromotionParams) -> Check:
    metric, value = params.quality_metric, row.quality.get(params.quality_metric)
    name = f"{metric} @ {params.budget_name}"
    if value is None:
        return Check(name, "missing", f">= {params.min_quality:.4f}", _q(best, metric), False,
                     f"{metric} not measured (have: {', '.join(sorted(row.quality)) or 'none'})")
    passed = value >= params.min_quality
    return Check(name, f"{value:.4f}", f">= {params.min_quality:.4f}", _q(best, metric), passed,
                 f"{metric} {value:.4f} < minimum {params.min_quality:.4f}")


def _index_bytes(row: BudgetRow, best: BudgetRow | None, params: PromotionParams) -> Check:
    dtype, limit = params.index_dtype, params.max_index_bytes_per_candidate
    value = row.index_bytes_per_candidate.get(dtype)
    theirs = NONE if best is None or dtype not in best.index_bytes_per_candidate else f"{best.index_bytes_per_candidate[dtype]:,}"
    name = f"index bytes/candidate ({dtype})"
    if value is None:
        return Check(name, "missing", f"<= {limit:,}", theirs, False, f"no index size for {dtype}")
    return Check(name, f"{value:,}", f"<= {limit:,}", theirs, value <= limit,
                 f"index {value:,} B/candidate ({dtype}) > maximum {limit:,}")


def _latency(row: BudgetRow, best: BudgetRow | None, params: PromotionParams) -> Check:
    corpus, limit = str(params.latency_corpus_size), params.max_latency_ms
    value = row.latency_ms_per_query.get(corpus)
    theirs = NONE if best is None or corpus not in best.latency_ms_per_query else f"{best.latency_ms_per_query[corpus]:.3g}"
    name = f"latency ms/query @ {params.latency_corpus_size:,} candidates"
    if value is None:
        have = ", ".join(sorted(row.latency_ms_per_query)) or "none"
        return Check(name, "missing", f"<= {limit:g}", theirs, False,
                     f"no latency measured at {params.latency_corpus_size:,} candidates (have: {have})")
    return Check(name, f"{value:.3g}", f"<= {limit:g}", theirs, value <= limit,
                 f"latency {value:.3g} ms/query > maximum {limit:g}")


def _gain(row: BudgetRow, best: BudgetRow | None, params: PromotionParams, has_champion: bool) -> Check:
    metric, limit = params.quality_metric, f">= +{params.min_gain:.4f}"
    if not has_champion:
        return Check(GAIN, "no champion", limit, NONE, True)
    value, theirs = row.quality.get(metric), best.quality.get(metric) if best else None
    if theirs is None:
        return Check(GAIN, "unknown", limit, "missing", False,
                     f"the champion has no {metric} at {params.budget_name} to compare with")
    if value is None:
        return Check(GAIN, "unknown", limit, f"{theirs:.4f}", False, f"{metric} not measured")
    gain = value - theirs
    # A tolerance so that a gain equal to the bound in decimal is not lost to binary rounding.
    return Check(GAIN, f"{gain:+.4f}", limit, f"{theirs:.4f}", gain >= params.min_gain - 1e-12,
                 f"gain {gain:+.4f} over the champion < minimum +{params.min_gain:.4f}")


def _q(row: BudgetRow | None, metric: str) -> str:
    value = row.quality.get(metric) if row else None
    return NONE if value is None else f"{value:.4f}"


def _read(client: MlflowClient, name: str, version: str | None) -> tuple[ModelVersion, ModelVersion | None]:
    uri = client.tracking_uri
    with reaching(uri, f"reading {name!r} from the registry", "no alias was changed"):
        try:
            aliases = client.get_registered_model(name).aliases
        except MlflowException as error:
            if not is_missing(error):
                raise
            raise RegistryError(f"no model named {name!r} is registered in {uri}: run the pipeline "
                                "(or `metaembed register`) first") from None
        aliases = {alias: str(number) for alias, number in aliases.items()}  # the sqlite store gives ints
        version = version or aliases.get(CHALLENGER)
        if version is None:
            raise RegistryError(f"{name!r} has no {CHALLENGER} alias: pass --version N")
        candidate = client.get_model_version(name, str(version))
        champion = client.get_model_version(name, aliases[CHAMPION]) if CHAMPION in aliases else None
    return candidate, champion


def _table(version: ModelVersion) -> tuple[SweepBudgets | None, str]:
    """The version's quality/cost table, or None and why not (a check then fails with that reason)."""
    text = version.tags.get(BUDGETS_TAG)
    if text is None:
        return None, f"v{version.version} has no {BUDGETS_TAG} tag: register it with `metaembed register`"
    try:
        return SweepBudgets.parse(text, f"v{version.version} tag {BUDGETS_TAG}"), ""
    except StageOutputError as error:
        return None, f"{error}, then `metaembed register`"
