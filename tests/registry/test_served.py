"""The served-budget rule (registry/served.py) on cost tables, and the tables it reads from the real
sweep and index stage outputs."""

from __future__ import annotations

import pytest

from metaembed.registry.params import PromotionParams
from metaembed.registry.served import BudgetCost, CostTable, cheaper_or_equal, choose, cost_table

# (name, quality, index bytes per candidate, ms/query): cheapest first, best quality last.
ROWS = [("1x1", 0.30, 256, 0.5), ("2x4", 0.49, 1024, 1.0), ("4x8", 0.50, 2048, 2.0), ("8x16", 0.50, 4096, 4.0)]


def table(rows=ROWS, measured=True, candidates=1000) -> CostTable:
    return CostTable(tuple(BudgetCost(*row) for row in rows), "bfloat16", measured, candidates, "test")


def rules(**overrides) -> PromotionParams:
    return PromotionParams(**{"max_quality_drop": 0.02, **overrides})


def test_the_cheapest_budget_within_the_quality_drop_is_served():
    choice = choose(table(), rules())
    assert choice.name == "2x4"  # 0.49 is within 0.02 of the best 0.50; 1x1 is not
    excluded = {option.cost.name: option.excluded for option in choice.options}
    assert excluded["1x1"] == "mmeb_p_at_1 0.3000 is more than 0.0200 below the best 0.5000 (4x8)"
    assert excluded["4x8"] == excluded["8x16"] == ""  # eligible, only costlier
    assert [option.served for option in choice.options] == [False, True, False, False]
    assert "within 0.0200 of the best (4x8: 0.5000)" in choice.rule

    assert choose(table(), rules(max_quality_drop=0.0)).name == "4x8"  # the cheaper of the two best
    assert choose(table(), rules(max_quality_drop=0.2)).name == "1x1"


def test_a_drop_exactly_at_the_bound_counts_as_within_it():
    rows = [("1x1", 0.30, 256, 0.5), ("4x8", 0.33, 2048, 2.0)]
    assert 0.33 - 0.03 > 0.30  # in binary floating point: a plain comparison would exclude 1x1
    assert choose(table(rows), rules(max_quality_drop=0.03)).name == "1x1"


def test_the_latency_bound_excludes_a_budget():
    choice = choose(table(), rules(max_latency_ms=0.9))
    assert choice.served is None
    assert dict((o.cost.name, o.excluded) for o in choice.options)["2x4"] == "latency 1 ms/query > maximum 0.9"
    assert choice.failure.startswith("no budget is within every bound: 1x1: mmeb_p_at_1 0.3000 is more than")

    slow_cheap = [("2x4", 0.50, 1024, 9.0), ("4x8", 0.50, 2048, 2.0)]
    assert choose(table(slow_cheap), rules(max_latency_ms=5)).name == "4x8"  # the cheaper one is too slow


def test_the_bytes_bound_excludes_a_budget():
    choice = choose(table(), rules(max_quality_drop=0.0, max_index_bytes_per_candidate=3000))
    assert choice.name == "4x8"
    assert dict((o.cost.name, o.excluded) for o in choice.options)["8x16"] == \
        "index 4,096 B/candidate > maximum 3,000"
    assert choose(table(), rules(max_quality_drop=0.0, max_index_bytes_per_candidate=2000)).served is None


def test_equal_bytes_are_broken_by_latency_then_quality():
    rows = [("4x8", 0.50, 2048, 3.0), ("8x8", 0.50, 2048, 2.0), ("2x8", 0.495, 2048, 2.0)]
    assert choose(table(rows), rules()).name == "8x8"  # same bytes, lower latency, then the better quality


def test_a_pinned_budget_is_served_whatever_the_rule_would_pick():
    choice = choose(table(), rules(served_budget=(8, 16)))
    assert (choice.name, choice.rule) == ("8x16", "pinned by promotion.served_budget (8x16)")
    missing = choose(table(), rules(served_budget=(16, 64)))
    assert missing.served is None and missing.failure == "budget 16x64 was not evaluated (have: 1x1, 2x4, 4x8, 8x16)"


def test_cost_is_bytes_then_comparable_latency_within_the_tolerance():
    champion = BudgetCost("4x8", 0.5, 2048, 2.0)
    assert cheaper_or_equal(BudgetCost("2x4", 0.6, 1024, 2.4), champion, True, 0.25) == (True, "")
    assert cheaper_or_equal(BudgetCost("8x16", 0.6, 4096, 1.0), champion, True, 0.25) == (
        False, "index 4,096 B/candidate > the champion's 2,048")
    slower = cheaper_or_equal(BudgetCost("4x8", 0.6, 2048, 2.6), champion, True, 0.25)
    assert slower == (False, "latency 2.6 ms/query > the champion's 2 (+25% allowed)")
    assert cheaper_or_equal(BudgetCost("4x8", 0.6, 2048, 2.6), champion, False, 0.25) == (True, "")  # bytes only


def test_latencies_compare_only_when_measured_alike():
    assert table().comparable(table())
    assert not table().comparable(table(measured=False, candidates=1000))
    assert not table().comparable(table(candidates=2000))


def test_the_index_stage_latency_and_bytes_are_used_when_it_ran(budget_table, index_stage):
    latency, _ = index_stage
    params = rules(latency_corpus_size=1000)
    measured = cost_table(budget_table, latency, params, "int8")
    assert measured.measured and measured.dtype == "bfloat16"  # the index's own dtype, not the fallback's
    for row in measured.rows:
        timed = latency.row(row.name)
        assert (row.latency_ms, row.index_bytes, row.recall) == (timed.two_stage_ms, timed.index_bytes_per_candidate,
                                                                 timed.recall_at_k)
        assert row.search == "two-stage" and timed.recall_at_k >= params.min_recall
        assert row.quality == budget_table.row((timed.r_q, timed.r_c)).quality["mmeb_p_at_1"]
    assert f"{latency.index.candidates:,} evaluation candidates" in measured.latency_source


def test_without_the_index_stage_the_sweep_synthetic_latency_stands_in_and_says_so(budget_table):
    fallback = cost_table(budget_table, None, rules(latency_corpus_size=1000), "bfloat16")
    assert not fallback.measured and fallback.candidates == 1000
    for row, swept in zip(fallback.rows, budget_table.budgets):
        assert (row.latency_ms, row.index_bytes) == (swept.latency_ms_per_query["1000"],
                                                     swept.index_bytes_per_candidate["bfloat16"])
    assert fallback.latency_source.endswith("the index stage did not run for this version")
    # A size the sweep did not time: no latency, so a latency bound excludes every budget, saying why.
    missing = cost_table(budget_table, None, rules(latency_corpus_size=10**6), "bfloat16")
    choice = choose(missing, rules(latency_corpus_size=10**6, max_latency_ms=10))
    assert choice.served is None and "no latency measured at 1,000,000 candidates" in choice.failure


@pytest.mark.parametrize("budget", [(0, 4), (4, 0)])
def test_a_pinned_budget_needs_positive_sizes(budget):
    with pytest.raises(ValueError, match="served_budget must be null or"):
        PromotionParams(served_budget=budget)


def test_a_two_stage_search_below_min_recall_is_costed_at_its_exhaustive_latency(budget_table, index_stage):
    latency, _ = index_stage
    first, *rest = latency.budgets
    missing = latency.model_copy(update={"budgets": [first.model_copy(update={"recall_at_k": 0.5}), *rest]})
    measured = cost_table(budget_table, missing, rules(latency_corpus_size=1000), "int8")
    row = measured.row(first.name)
    assert (row.latency_ms, row.recall, row.search) == (first.exhaustive_ms, 0.5, "exhaustive")
    assert all(other.search == "two-stage" for other in measured.rows[1:])
    from metaembed.registry.decision import options_markdown

    shown = options_markdown(choose(measured, rules()), measured, "mmeb_p_at_1").splitlines()
    assert "search timed" in shown[0] and "exhaustive" in shown[2] and "two-stage" in shown[3]
    lenient = cost_table(budget_table, missing, rules(latency_corpus_size=1000, min_recall=0.5), "int8")
    assert lenient.row(first.name).latency_ms == first.two_stage_ms
