"""The promotion gate: `champion` moves to a version only when it is good enough and worth its cost.

Each version is served at one budget, chosen by the rule in served.py from its own tags (the
sweep's quality per budget; the index stage's measured latency and index bytes, or the sweep's
synthetic fallback). At that budget the candidate must reach the minimum quality and stay within
the cost bounds, and, against the champion at the champion's served budget, gain at least
`min_gain` in quality at equal or lower cost. Everything comes from version tags, so any two
versions can be compared later, whatever is on disk.

Everything is read before anything is written, and the alias is one write: when the registry
cannot be reached the gate stops with a RegistryError and no alias has changed. The decision is
written on the candidate version as `gate.*` tags and as its description (promoted or rejected,
the served budget, and why).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from metaembed.registry.decision import ALREADY, PROMOTE, REJECT, Check, Decision, decision_markdown
from metaembed.registry.names import BUDGETS_TAG, CHALLENGER, CHAMPION, GATE_BUDGET_TAG, INDEX_LATENCY_TAG
from metaembed.registry.params import PromotionParams
from metaembed.registry.served import BudgetCost, Choice, CostTable, cheaper_or_equal, choose, cost_table
from metaembed.registry.store import RegistryError, is_missing, reaching
from metaembed.registry.table import budget_markdown
from metaembed.stage_outputs import IndexLatency, StageOutputError, SweepBudgets

__all__ = ["ALREADY", "PROMOTE", "REJECT", "Check", "Decision", "Rival", "apply", "decide", "evaluate", "promote"]

NONE = "-"
SERVED = "served budget"
GAIN = "gain over champion"
COST = "cost vs champion"


@dataclass(frozen=True)
class Tables:
    """What a version's tags say about its budgets; `problem` says why `sweep` is None."""

    sweep: SweepBudgets | None
    index: IndexLatency | None
    problem: str = ""


@dataclass(frozen=True)
class Rival:
    """The champion at the budget it is served at."""

    version: str
    table: CostTable | None
    cost: BudgetCost | None
    missing: str = ""  # why there is no cost to compare with


def promote(client: MlflowClient, name: str, params: PromotionParams, version: str | None = None,
            dry_run: bool = False, index_dtype: str = "bfloat16") -> Decision:
    """Decide for `version` (default: the `challenger`) and, unless dry_run, act on it.

    index_dtype: params.yaml `index.dtype`, whose bytes the sweep's fallback counts."""
    decision = decide(client, name, params, version, index_dtype)
    if not dry_run:
        apply(client, decision)
    return decision


def decide(client: MlflowClient, name: str, params: PromotionParams, version: str | None = None,
           index_dtype: str = "bfloat16") -> Decision:
    candidate, champion = _read(client, name, version)
    same = champion is not None and str(champion.version) == str(candidate.version)
    mine = _tables(candidate)
    table = cost_table(mine.sweep, mine.index, params, index_dtype) if mine.sweep else None
    rival = None if same or champion is None else _rival(champion, params, index_dtype)
    checks, choice = evaluate(table, rival, params, mine.problem)
    if same:  # nothing to beat: show the bounds, and say why there is no comparison
        checks = [Check(c.name, "is the champion", c.limit, NONE, True) if c.name in (GAIN, COST) else c
                  for c in checks]
    failures = [check.failure for check in checks if not check.passed]
    if same:
        outcome, reason = ALREADY, f"v{candidate.version} is already the {CHAMPION}"
    elif failures:
        outcome, reason = REJECT, "; ".join(failures)
    else:
        outcome = PROMOTE
        reason = f"every check passes at {choice.name}" + ("" if champion else f" (first {CHAMPION})")
    if table is not None and not table.measured:
        reason += f"; latency from {table.latency_source}"
    return Decision(name, str(candidate.version), str(champion.version) if champion else None,
                    choice.name if choice else "none", params.quality_metric, outcome, reason, tuple(checks),
                    choice, table, rival.cost.name if rival and rival.cost else None,
                    budget_markdown(mine.sweep, mine.index) if mine.sweep else "")


def apply(client: MlflowClient, decision: Decision) -> None:
    if decision.outcome == ALREADY:
        return
    uri, name, version = client.tracking_uri, decision.model_name, decision.candidate
    before = f"v{decision.champion}" if decision.champion else "no version"
    if decision.promote:
        with reaching(uri, f"moving {CHAMPION} to v{version}", f"{CHAMPION} still points at {before}"):
            client.set_registered_model_alias(name, CHAMPION, version)
    now = f"v{version}" if decision.promote else before
    description = "\n\n".join(part for part in (decision_markdown(decision), decision.budgets_markdown) if part)
    with reaching(uri, f"writing the gate's decision on v{version}", f"{CHAMPION} points at {now}"):
        for key, value in decision.tags().items():
            client.set_model_version_tag(name, version, key, value)
        client.update_model_version(name, version, description=description)


def evaluate(candidate: CostTable | None, rival: Rival | None, params: PromotionParams,
             unreadable: str = "") -> tuple[list[Check], Choice | None]:
    """The gate's checks at the candidate's served budget, each with its value, the bound and the
    champion's value; and the choice of budget. `rival`: the champion (None: there is none);
    `unreadable` says why the candidate has no table (None), for the failed check."""
    if candidate is None:
        return [Check(SERVED, "missing", NONE, NONE, False, unreadable or "no quality table")], None
    choice = choose(candidate, params)
    theirs = rival.cost if rival else None
    rule = "pinned" if params.served_budget else f"cheapest within {params.max_quality_drop:.4f} of the best"
    checks = [Check(SERVED, choice.name, rule, theirs.name if theirs else NONE, choice.served is not None,
                    choice.failure)]
    row = choice.served
    if row is None:
        return checks, choice
    checks.append(_quality(row, theirs, params))
    if params.max_index_bytes_per_candidate is not None:
        checks.append(_index_bytes(row, theirs, candidate, params))
    if params.max_latency_ms is not None:
        checks.append(_latency(row, theirs, candidate, params))
    checks += [_gain(row, rival, params), _cost(row, candidate, rival, params)]
    return checks, choice


def _quality(row: BudgetCost, theirs: BudgetCost | None, params: PromotionParams) -> Check:
    metric = params.quality_metric
    name, limit = f"{metric} @ {row.name}", f">= {params.min_quality:.4f}"
    if row.quality is None:
        return Check(name, "missing", limit, _q(theirs), False, f"{metric} not measured at {row.name}")
    return Check(name, f"{row.quality:.4f}", limit, _q(theirs), row.quality >= params.min_quality,
                 f"{metric} {row.quality:.4f} < minimum {params.min_quality:.4f} at {row.name}")


def _index_bytes(row: BudgetCost, theirs: BudgetCost | None, table: CostTable, params: PromotionParams) -> Check:
    limit, name = params.max_index_bytes_per_candidate, f"index bytes/candidate ({table.dtype})"
    champion = NONE if theirs is None or theirs.index_bytes is None else f"{theirs.index_bytes:,}"
    if row.index_bytes is None:
        return Check(name, "missing", f"<= {limit:,}", champion, False, f"no index size for {table.dtype}")
    return Check(name, f"{row.index_bytes:,}", f"<= {limit:,}", champion, row.index_bytes <= limit,
                 f"index {row.index_bytes:,} B/candidate ({table.dtype}) > maximum {limit:,}")


def _latency(row: BudgetCost, theirs: BudgetCost | None, table: CostTable, params: PromotionParams) -> Check:
    limit = params.max_latency_ms
    where = "index stage" if table.measured else f"sweep, {table.candidates:,} candidates"
    name = f"latency ms/query ({where})"
    champion = NONE if theirs is None or theirs.latency_ms is None else f"{theirs.latency_ms:.3g}"
    if row.latency_ms is None:
        return Check(name, "missing", f"<= {limit:g}", champion, False,
                     f"no latency measured at {table.candidates:,} candidates")
    return Check(name, f"{row.latency_ms:.3g}", f"<= {limit:g}", champion, row.latency_ms <= limit,
                 f"latency {row.latency_ms:.3g} ms/query > maximum {limit:g}")


def _gain(row: BudgetCost, rival: Rival | None, params: PromotionParams) -> Check:
    metric, limit = params.quality_metric, f">= +{params.min_gain:.4f}"
    if rival is None:
        return Check(GAIN, "no champion", limit, NONE, True)
    theirs = rival.cost
    if theirs is None:
        return Check(GAIN, "unknown", limit, "missing", False, rival.missing)
    if theirs.quality is None:
        return Check(GAIN, "unknown", limit, "missing", False,
                     f"the champion v{rival.version} has no {metric} at {theirs.name} to compare with")
    if row.quality is None:
        return Check(GAIN, "unknown", limit, f"{theirs.quality:.4f}", False, f"{metric} not measured")
    gain = row.quality - theirs.quality
    # A tolerance so that a gain equal to the bound in decimal is not lost to binary rounding.
    return Check(GAIN, f"{gain:+.4f}", limit, f"{theirs.quality:.4f}", gain >= params.min_gain - 1e-12,
                 f"gain {gain:+.4f} over the champion < minimum +{params.min_gain:.4f}")


def _cost(row: BudgetCost, table: CostTable, rival: Rival | None, params: PromotionParams) -> Check:
    tolerance = params.latency_tolerance
    if rival is None:
        return Check(COST, "no champion", "<= champion", NONE, True)
    if rival.cost is None or rival.table is None:
        return Check(COST, _cost_text(row), "<= champion", "missing", False, "no champion cost to compare with")
    comparable = table.comparable(rival.table)
    limit = f"<= champion (latency +{tolerance:.0%})" if comparable else "<= champion (bytes; latencies not comparable)"
    passed, why = cheaper_or_equal(row, rival.cost, comparable, tolerance)
    return Check(COST, _cost_text(row), limit, _cost_text(rival.cost), passed, f"costlier than the champion: {why}")


def _cost_text(cost: BudgetCost) -> str:
    size = "?" if cost.index_bytes is None else f"{cost.index_bytes:,}"
    latency = "?" if cost.latency_ms is None else f"{cost.latency_ms:.3g}"
    return f"{size} B, {latency} ms"


def _q(row: BudgetCost | None) -> str:
    return NONE if row is None or row.quality is None else f"{row.quality:.4f}"


def _rival(version: ModelVersion, params: PromotionParams, index_dtype: str) -> Rival:
    """The champion at the budget the gate served it at (`gate.budget`), or, without that tag (an
    alias moved by hand), at the budget the current rule picks from its tables."""
    number, tables = str(version.version), _tables(version)
    if tables.sweep is None:
        return Rival(number, None, None,
                     f"the champion v{number} has no quality table to compare with: {tables.problem}")
    table = cost_table(tables.sweep, tables.index, params, index_dtype)
    tagged = table.row(version.tags.get(GATE_BUDGET_TAG, ""))
    served = tagged or choose(table, params).served
    if served is None:
        return Rival(number, table, None, f"the champion v{number} has no {GATE_BUDGET_TAG} tag and no budget within "
                                          "the current bounds; move the alias by hand if the candidate should serve")
    return Rival(number, table, served)


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


def _tables(version: ModelVersion) -> Tables:
    """The version's quality/cost tables; a None sweep and why not (a check then fails with that reason)."""
    text = version.tags.get(BUDGETS_TAG)
    if text is None:
        return Tables(None, None, f"v{version.version} has no {BUDGETS_TAG} tag: register it with `metaembed register`")
    try:
        sweep = SweepBudgets.parse(text, f"v{version.version} tag {BUDGETS_TAG}")
        latency = version.tags.get(INDEX_LATENCY_TAG)
        index = None if latency is None else IndexLatency.parse(latency, f"v{version.version} tag {INDEX_LATENCY_TAG}")
    except StageOutputError as error:
        return Tables(None, None, f"{error}, then `metaembed register`")
    return Tables(sweep, index)
