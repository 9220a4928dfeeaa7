"""PNG figures of evaluation, sweep, index and baselines results (bare matplotlib Figures, Agg)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure

PANELS = (("mmeb_p_at_1", "MMEB Precision@1"), ("vidore_ndcg_at_5", "ViDoRe nDCG@5"))


def _quality_axis(ax) -> None:
    """From 0 up to a little above the highest point: near-chance results stay readable."""
    top = max((max(line.get_ydata(), default=0) for line in ax.lines), default=0)
    for collection in ax.collections:
        offsets = collection.get_offsets()
        if len(offsets):
            top = max(top, float(offsets[:, 1].max()))
    ax.set_ylim(0, min(1.0, 1.15 * top + 0.02))


def save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def evaluation_figure(report: Mapping) -> Figure:
    """Quality per subset/set at every budget, the overall mean in black, chance dashed."""
    budgets = list(report["summary"])
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    axes = figure.subplots(1, 2)
    for ax, (metric, title), (table, per_set) in zip(axes, PANELS, (("mmeb", "p_at_1"), ("vidore", "ndcg_at_5"))):
        names = sorted(report[table][budgets[0]]) if report[table].get(budgets[0]) else []
        for name in names:
            ax.plot(budgets, [report[table][b][name][per_set] for b in budgets], marker=".", alpha=0.6,
                    label=name)
        if names:
            ax.plot(budgets, [report["summary"][b][metric] for b in budgets], color="black", marker="o",
                    linewidth=2.5, label="mean")
            if metric in report["chance"]:
                ax.axhline(report["chance"][metric], color="grey", linestyle="--", label="chance")
            ax.legend(fontsize=7, ncol=2)
        else:
            ax.text(0.5, 0.5, "no sets", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        ax.set_xlabel("budget (r_q x r_c)")
        _quality_axis(ax)
        ax.grid(alpha=0.3)
    return figure


def sweep_budget_figure(rows: Sequence[Mapping], chance: Mapping[str, float], quality_metric: str) -> Figure:
    """Both quality metrics against the budget; Pareto budgets (on `quality_metric`) starred."""
    names = [row["name"] for row in rows]
    figure = Figure(figsize=(7, 4.2), layout="constrained")
    ax = figure.subplots()
    for (metric, title), colour in zip(PANELS, ("tab:blue", "tab:orange")):
        values = [row["quality"].get(metric) for row in rows]
        if all(v is None for v in values):
            continue
        ax.plot(names, values, marker="o", color=colour, label=title)
        if metric == quality_metric:
            stars = [(n, v) for n, v, row in zip(names, values, rows) if row["pareto"]]
            ax.scatter([s[0] for s in stars], [s[1] for s in stars], marker="*", s=220, color=colour,
                       zorder=3, label="Pareto frontier")
        if metric in chance:
            ax.axhline(chance[metric], color=colour, linestyle="--", alpha=0.6, label=f"{title}: chance")
    ax.set_xlabel("budget (r_q x r_c)")
    ax.set_ylabel("quality")
    _quality_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def sweep_index_figure(rows: Sequence[Mapping], quality_metric: str, dtype: str = "bfloat16") -> Figure:
    """Quality against index bytes per candidate (log scale), budgets labelled, frontier drawn."""
    figure = Figure(figsize=(7, 4.2), layout="constrained")
    ax = figure.subplots()
    labelled: set = set()
    for (metric, title), colour in zip(PANELS, ("tab:blue", "tab:orange")):
        points = [(row["index_bytes_per_candidate"][dtype], row["quality"].get(metric), row) for row in rows]
        points = [p for p in points if p[1] is not None]
        if not points:
            continue
        ax.scatter([p[0] for p in points], [p[1] for p in points], color=colour, label=title)
        for x, y, row in points:
            if (x, row["name"]) not in labelled:  # one label per budget, not per metric
                labelled.add((x, row["name"]))
                ax.annotate(row["name"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        if metric == quality_metric:
            frontier = sorted((p for p in points if p[2]["pareto"]), key=lambda p: p[0])
            ax.plot([p[0] for p in frontier], [p[1] for p in frontier], color=colour, label="Pareto frontier")
    ax.set_xscale("log", base=2)
    ax.set_xlabel(f"index bytes per candidate ({dtype})")
    ax.set_ylabel("quality")
    _quality_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def index_latency_figure(rows: Sequence[Mapping], candidates: int, k: int) -> Figure:
    """ms per query on the built index against the budget (log scale): exhaustive and two-stage,
    each two-stage point labelled with its recall@k against the exhaustive top-k."""
    names = [row["name"] for row in rows]
    figure = Figure(figsize=(7, 4.2), layout="constrained")
    ax = figure.subplots()
    ax.plot(names, [row["exhaustive_ms"] for row in rows], marker="o", label="exhaustive")
    staged = [(row["name"], row["two_stage_ms"], row["recall_at_k"]) for row in rows if row["two_stage_ms"] is not None]
    if staged:
        ax.plot([s[0] for s in staged], [s[1] for s in staged], marker="s", label="two-stage")
        for name, ms, recall in staged:
            ax.annotate(f"recall@{k} {recall:.2f}", (name, ms), textcoords="offset points", xytext=(4, -12),
                        fontsize=7)
    ax.set_yscale("log")
    ax.set_xlabel("budget (r_q x r_c)")
    ax.set_ylabel("ms per query (median, one query at a time)")
    ax.set_title(f"search latency on the index of {candidates:,} evaluation candidates")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return figure


def baselines_figure(rows: Sequence[Mapping], chance: Mapping[str, float]) -> Figure:
    """Mean quality (error bars: std over seeds) against index bytes, one line per variant."""
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    axes = figure.subplots(1, 2)
    variants = list(dict.fromkeys(row["variant"] for row in rows))
    for ax, (metric, title) in zip(axes, PANELS):
        for variant in variants:
            mine = [r for r in rows if r["variant"] == variant and r["quality"].get(metric)]
            if not mine:
                continue
            mine.sort(key=lambda r: r["index_bytes_per_candidate"]["bfloat16"])
            ax.errorbar([r["index_bytes_per_candidate"]["bfloat16"] for r in mine],
                        [r["quality"][metric]["mean"] for r in mine],
                        yerr=[r["quality"][metric]["std"] for r in mine], marker="o", capsize=3, label=variant)
        if metric in chance:
            ax.axhline(chance[metric], color="grey", linestyle="--", label="chance")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("index bytes per candidate (bfloat16)")
        ax.set_title(title)
        _quality_axis(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return figure
