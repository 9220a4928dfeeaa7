"""The `sweep` stage: quality and cost at every budget, the Pareto frontier, plots, MLflow.

Quality is re-scored from the embeddings `evaluate` saved (no re-encoding). Costs per budget:
index bytes per candidate (float32 and bfloat16) and FLOPs per pair from `metaembed.costs`,
scoring latency per query measured over synthetic indexes of 10k and 100k candidates, and the
encoding rate of each side measured on a sample of the evaluation inputs.

    <out_dir>/budgets.json      the per-budget table, `metaembed.stage_outputs.SweepBudgets`
                                (registration and the promotion gate read it)
    <out_dir>/metrics.json      the same numbers for `dvc metrics show`
    <out_dir>/latency.json      every timed repeat, the dtype and query batch, the machine
    <out_dir>/plot_data.json    rows for the DVC plots
    <out_dir>/quality_vs_budget.png, quality_vs_index_size.png
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from metaembed.config import ParamsRoot
from metaembed.evaluation.params import QUALITY_METRICS, SweepParams
from metaembed.stage_outputs import BudgetRow, SweepBudgets
from metaembed.tracking import TrackingParams

INDEX_DTYPES = ("float32", "bfloat16")


def budget_costs(vectors: dict[str, float], dim: int) -> dict:
    """Index bytes per candidate by dtype and FLOPs per pair (PAPER.md's formulas) for the mean
    vectors per side a budget reads (exact integers for meta budgets)."""
    from metaembed.costs import budget_cost, bytes_per_element

    query, candidate = vectors["query"], vectors["candidate"]
    if float(query).is_integer() and float(candidate).is_integer():
        budget = (int(query), int(candidate))
        return {"index_bytes_per_candidate": {d: budget_cost(budget, dim, d).index_bytes_per_candidate
                                              for d in INDEX_DTYPES},
                "flops_per_pair": budget_cost(budget, dim).flops_per_pair}
    # Token-level: a mean number of vectors per side.
    return {"index_bytes_per_candidate": {d: round(candidate * dim * bytes_per_element(d)) for d in INDEX_DTYPES},
            "flops_per_pair": round(query * candidate * (2 * dim - 1))}


def run_sweep(params: ParamsRoot, progress: bool = True, log_to_mlflow: bool | None = None,
              root: str | Path = ".") -> SweepBudgets:
    """Measure every budget; write budgets.json, metrics, plots; returns budgets.json's content."""
    from tqdm import tqdm

    from metaembed.evaluation.encode import load_stores
    from metaembed.evaluation.quality import plan_suite, score_stores, scoring_budgets
    from metaembed.evaluation.stage import (
        EMBEDDINGS_DIR,
        encoder_fingerprint,
        training_run_id,
    )
    from metaembed.evaluation.suite import load_prepared
    from metaembed.model import MetaEmbed

    settings, evaluate = params.sweep, params.evaluate
    started = time.perf_counter()
    if evaluate.num_threads:
        import torch

        torch.set_num_threads(evaluate.num_threads)
    log = settings.log_to_mlflow if log_to_mlflow is None else log_to_mlflow
    run_id = training_run_id(params, "sweep") if log else None
    cache_dir = Path(evaluate.out_dir) / EMBEDDINGS_DIR
    stores, meta = load_stores(cache_dir)
    if meta.get("encoder") != encoder_fingerprint(params.model_dir):
        raise ValueError(f"{cache_dir} holds embeddings of another model than {params.model_dir} (or older "
                         "encoding code): re-run `metaembed evaluate` first")
    model = MetaEmbed.from_pretrained(params.model_dir)
    budgets = scoring_budgets(model.params.pooling, settings.budgets, model.num_vectors("query"),
                              model.num_vectors("candidate"), key="sweep.budgets")
    plan = plan_suite(load_prepared(params.prepared_dir))
    try:
        quality = score_stores(plan, stores, budgets, evaluate.recall_at, progress)
    except KeyError as error:
        raise ValueError(f"{cache_dir}: {error.args[0]}; re-run `metaembed evaluate`") from None
    rows, timings = [], {}
    with tqdm(total=len(budgets), desc="sweep: latency and encoding rate", unit="budget",
              disable=not progress) as bar:
        gate = _gate(settings)
        for name, budget in budgets.items():
            bar.set_postfix_str(name)
            row, timings[name] = _measure(name, budget, quality, model, plan, settings, evaluate.batch_size, gate)
            rows.append(row)
            bar.update(1)
    table = SweepBudgets(mlflow_run_id=run_id, quality_metric=settings.quality_metric,
                         budgets=_with_pareto(rows, settings.quality_metric))
    latency = {"settings": settings.latency.model_dump(), "machine": _machine(), "budgets": timings}
    _write_outputs(params.budgets_path, table, latency, quality, settings, time.perf_counter() - started)
    if run_id:
        _log(run_id, params.tracking, table, latency, Path(settings.out_dir), root)
    return table


def _measure(name, budget, quality, model, plan, params: SweepParams, batch_size: int,
             gate) -> tuple[BudgetRow, list[dict]]:
    """The budget's row (not yet marked on the frontier) and every timed repeat of its latency."""
    from metaembed.evaluation import latency, throughput

    shape = quality.budgets[name]
    dim = model.dim
    r_q, r_c = shape["r_q"], shape["r_c"]
    timings = latency.measure(r_q, r_c, dim, params.latency, gate)
    rates = {}
    for side, r in (("query", r_q), ("candidate", r_c)):
        items = throughput.sample(plan.requests.items[side], params.encode_sample)
        rates[side] = throughput.encode_rate(model, side, items, r if budget is not None else None, batch_size)
    summary = quality.summary[name]
    row = BudgetRow(
        name=name, r_q=r_q, r_c=r_c,
        quality={metric: summary.get(metric) for metric in QUALITY_METRICS},
        **budget_costs(shape["vectors"], dim),
        latency_ms_per_query={str(t.num_candidates): t.ms_per_query for t in timings},
        encode_per_second=rates,
    )
    return row, [asdict(t) for t in timings]


def _with_pareto(rows: list[BudgetRow], metric: str) -> list[BudgetRow]:
    from metaembed.evaluation.pareto import pareto_mask

    mask = pareto_mask([row.quality[metric] for row in rows],
                       [(row.index_bytes_per_candidate["float32"], row.flops_per_pair) for row in rows])
    return [row.model_copy(update={"pareto": bool(on_front)}) for row, on_front in zip(rows, mask)]


def _gate(params: SweepParams):
    from metaembed.timing import QUIET_THRESHOLD, QuietGate

    return QuietGate(params.latency.quiet_wait_s, QUIET_THRESHOLD) if params.latency.quiet_wait_s > 0 else None


def _write_outputs(budgets_path: Path, table: SweepBudgets, latency: dict, quality, params: SweepParams,
                   seconds: float) -> None:
    """budgets.json where registration reads it (`ParamsRoot.budgets_path`); the rest beside it."""
    from metaembed.evaluation import plots

    out = budgets_path.parent
    table.write(budgets_path)
    metrics = {"mlflow_run_id": table.mlflow_run_id, "quality_metric": table.quality_metric,
               "budgets": {row.name: _flat_row(row) for row in table.budgets},
               "chance": quality.chance, "seconds": round(seconds, 1)}
    _write_json(out / "metrics.json", metrics)
    _write_json(out / "latency.json", latency)
    _write_json(out / "plot_data.json", [{"budget": row.name, **_flat_row(row)} for row in table.budgets])
    rows = [row.model_dump() for row in table.budgets]
    plots.save(plots.sweep_budget_figure(rows, quality.chance, params.quality_metric), out / "quality_vs_budget.png")
    plots.save(plots.sweep_index_figure(rows, params.quality_metric), out / "quality_vs_index_size.png")


def _machine() -> dict:
    import os
    import platform

    import torch

    return {"cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "machine": platform.machine(), "processor": platform.processor() or "unknown"}


def _flat_row(row: BudgetRow) -> dict:
    flat = {"r_q": row.r_q, "r_c": row.r_c, **{k: v for k, v in row.quality.items() if v is not None}}
    flat |= {f"index_bytes_{d}": v for d, v in row.index_bytes_per_candidate.items()}
    flat["flops_per_pair"] = row.flops_per_pair
    flat |= {f"latency_ms_{n}": v for n, v in row.latency_ms_per_query.items()}
    flat |= {f"encode_{side}_per_s": v for side, v in row.encode_per_second.items()}
    flat["pareto"] = row.pareto
    return flat


def _log(run_id: str, tracking: TrackingParams, table: SweepBudgets, latency: dict, out: Path, root) -> None:
    from metaembed.evaluation.tracked import flatten, log_results

    metrics = flatten("sweep", {row.name: _flat_row(row) | {"pareto": float(row.pareto)} for row in table.budgets})
    log_results(run_id, tracking, metrics,
                {"sweep/budgets.json": table.model_dump(mode="json"), "sweep/latency.json": latency},
                {f"sweep/plots/{name}": out / name for name in ("quality_vs_budget.png", "quality_vs_index_size.png")},
                root)


def _write_json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
