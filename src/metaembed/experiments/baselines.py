"""Baselines side by side: every variant x seed trained and evaluated with the same data, steps and
backbone; mean and spread over seeds; the paper's four directions checked with numbers.

    <out_dir>/<variant>/seed<k>/params.yaml   the run's params (params.yaml + overrides)
    <out_dir>/<variant>/seed<k>/{model,train,checkpoints,evaluate}/
    <out_dir>/results.json, results.md, baselines.png   the aggregate

A finished run (status.json with the same params digest and an evaluation report) is reused, so
a re-run after a failure continues where it stopped; a failed training resumes from its last
checkpoint. The table goes into the results document between the markers below.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from metaembed.config import ParamsError, apply_overrides, load_params, load_root, section, validate_params
from metaembed.evaluation.params import BaselinesParams
from metaembed.markdown_table import markdown_table
from metaembed.stage_outputs import EvaluateReport

BEGIN, END = "<!-- baselines:begin -->", "<!-- baselines:end -->"
TABLE_METRICS = (("mmeb_p_at_1", "MMEB P@1"), ("mmeb_twin_accuracy", "twin acc."),
                 ("mmeb_p_at_1_in_distribution", "MMEB IND"), ("mmeb_p_at_1_out_of_distribution", "MMEB OOD"),
                 ("vidore_ndcg_at_5", "ViDoRe nDCG@5"))
DIRECTION_METRICS = (("mmeb_p_at_1", "MMEB P@1"), ("vidore_ndcg_at_5", "ViDoRe nDCG@5"))
ROLES = {"metaembed": "MetaEmbed, MMR", "no_mmr": "MetaEmbed without MMR", "single_vector": "single vector",
         "token_level": "token-level multi-vector"}


@dataclass
class BaselinesOptions:
    params_path: str | Path = "params.yaml"
    variants: list[str] | None = None
    seeds: list[int] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # applied to every run
    out_dir: str | Path | None = None
    results_doc: str | Path | None = None
    write_doc: bool = True
    log_to_mlflow: bool = True
    progress: bool = True
    # Train and evaluate only, no aggregate: one flow run of a fan-out (flows/baselines.py) does its
    # variant x seed, and the last, plain call aggregates every finished run.
    runs_only: bool = False


def run_params(base: dict, variant: dict[str, Any], seed: int, run_dir: Path, shared: dict[str, Any]) -> dict:
    """The params of one run: shared overrides, then the variant's, then its seed and folders."""
    params = apply_overrides(apply_overrides(base, shared), variant)
    return apply_overrides(params, {
        "train.seed": seed,
        "train.output_dir": str(run_dir / "model"),
        "train.report_dir": str(run_dir / "train"),
        "train.checkpoint_dir": str(run_dir / "checkpoints"),
        "evaluate.out_dir": str(run_dir / "evaluate"),
        "evaluate.cache_embeddings": False,  # 0.4 GB per run on the default data, and nothing re-scores it
    })


def role(params: dict) -> str:
    """Which of the paper's models a run is, from its params (not its name)."""
    model, loss = params.get("model") or {}, params.get("loss") or {}
    pooling = model.get("pooling", "meta")
    if pooling == "tokens":
        return "token_level"
    if pooling == "last":
        return "single_vector"
    return "metaembed" if loss.get("mmr", True) else "no_mmr"


def run_baselines(options: BaselinesOptions) -> dict:
    """Train and evaluate every variant x seed (reusing finished runs), aggregate, report."""
    from tqdm import tqdm

    base = load_params(options.params_path)
    settings = section(base, "baselines", BaselinesParams, options.params_path)
    variants = _pick_variants(settings, options.variants)
    seeds = options.seeds or settings.seeds
    out = Path(options.out_dir or settings.out_dir)
    tags = _provenance(base, options, variants, seeds)
    jobs = _jobs(base, variants, seeds, out, options)  # every run's params checked before the first trains
    runs = []
    with tqdm(total=len(jobs), desc="baselines", unit="run", disable=not options.progress) as bar:
        for name, seed, run_dir, params in jobs:
            bar.set_postfix_str(f"{name} seed {seed}")
            runs.append(_run_one(name, seed, run_dir, params, options))
            bar.update(1)
    if options.runs_only:
        return {"out_dir": str(out), "runs": [{k: r[k] for k in ("variant", "seed", "run_dir", "wall_seconds")}
                                              for r in runs]}
    rows, chance = aggregate(runs)
    directions = check_directions(rows)
    context = _context(base, options, seeds, runs, tags)
    summary = _report(out, runs, rows, chance, directions, context, options, settings, tags, base)
    return summary


def _jobs(base: dict, variants: dict[str, dict], seeds: list[int], out: Path,
          options: BaselinesOptions) -> list[tuple[str, int, Path, dict]]:
    jobs = []
    for seed in seeds:
        for name, variant in variants.items():
            run_dir = out / name / f"seed{seed}"
            params = run_params(base, variant, seed, run_dir, options.overrides)
            validate_params(params, f"{options.params_path} (variant {name}, seed {seed}, with --set overrides)")
            jobs.append((name, seed, run_dir, params))
    return jobs


def _provenance(base: dict, options: BaselinesOptions, variants: dict[str, dict], seeds: list[int]) -> dict[str, str]:
    """The comparison's own tags: the file given with the shared overrides, the variants and seeds, the data
    every run reads and the code's commit (each training run also tags itself)."""
    from metaembed.tracking.provenance import stage_tags

    shared = validate_params(apply_overrides(base, options.overrides), options.params_path)
    return stage_tags(shared, {"params": shared.model_dump(mode="json"), "variants": variants, "seeds": seeds})


def _pick_variants(settings: BaselinesParams, names: list[str] | None) -> dict[str, dict]:
    if not names:
        return settings.variants
    unknown = [n for n in names if n not in settings.variants]
    if unknown:
        raise ParamsError(f"unknown variant(s) {unknown}; baselines.variants has {list(settings.variants)}")
    return {n: settings.variants[n] for n in names}


def _digest(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def _run_one(name: str, seed: int, run_dir: Path, params: dict, options: BaselinesOptions) -> dict:
    from metaembed.evaluation.stage import run_evaluate
    from metaembed.training.run import train

    run_dir.mkdir(parents=True, exist_ok=True)
    params_file = run_dir / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    digest = _digest(params)
    status_file = run_dir / "status.json"
    report_file = run_dir / "evaluate" / "report.json"
    status = json.loads(status_file.read_text()) if status_file.is_file() else {}
    if status.get("params_digest") == digest and status.get("done") and report_file.is_file():
        print(f"baselines: {name} seed {seed} already done in {run_dir}, reusing it")
    else:
        status_file.write_text(json.dumps({"params_digest": digest, "done": False}) + "\n")
        started = time.perf_counter()
        try:
            loaded = load_root(params_file)  # as `metaembed train` and `evaluate` would read the run's file
            train_report = train(loaded)
            run_evaluate(loaded, progress=options.progress, log_to_mlflow=options.log_to_mlflow)
        except Exception as error:
            raise RuntimeError(f"baselines: {name} seed {seed} failed ({run_dir}): {error}; re-run the same "
                               "command to resume (finished runs are kept)") from error
        status = {"params_digest": digest, "done": True, "wall_seconds": round(time.perf_counter() - started, 1),
                  "train_seconds": train_report["metrics"].get("wall_seconds"),
                  "mlflow_run_id": train_report.get("mlflow_run_id")}
        status_file.write_text(json.dumps(status, indent=1) + "\n")
    report = EvaluateReport.read(report_file).model_dump(mode="json")
    return {"variant": name, "seed": seed, "role": role(params), "run_dir": str(run_dir), "report": report,
            "mlflow_run_id": status.get("mlflow_run_id"), "wall_seconds": status.get("wall_seconds"),
            "max_steps": (params.get("train") or {}).get("max_steps")}


# aggregation --------------------------------------------------------------------------------------
def mean_std(values: list[float]) -> dict:
    """Mean and sample standard deviation (0 for a single seed)."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n, "values": values}


def aggregate(runs: list[dict]) -> tuple[list[dict], dict[str, float]]:
    """One row per variant and budget: quality mean/std over seeds, costs, role."""
    from metaembed.evaluation.sweep import budget_costs

    rows = []
    for variant in dict.fromkeys(r["variant"] for r in runs):
        mine = [r for r in runs if r["variant"] == variant]
        for budget in mine[0]["report"]["summary"]:
            reports = [r["report"] for r in mine if budget in r["report"]["summary"]]
            quality = {}
            for metric, _ in TABLE_METRICS:
                values = [rep["summary"][budget][metric] for rep in reports if metric in rep["summary"][budget]]
                if values:
                    quality[metric] = mean_std(values)
            vectors = {side: sum(rep["budgets"][budget]["vectors"][side] for rep in reports) / len(reports)
                       for side in ("query", "candidate")}
            rows.append({"variant": variant, "role": mine[0]["role"], "budget": budget, "seeds": len(reports),
                         "quality": quality, "vectors": vectors,
                         **budget_costs(vectors, mine[0]["report"]["model"]["dim"])})
    chance = runs[0]["report"]["chance"] if runs else {}
    return rows, chance


# directions ---------------------------------------------------------------------------------------
def _compare(a: dict, b: dict) -> dict:
    diff = a["mean"] - b["mean"]
    se = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
    return {"diff": diff, "se": se}


def _verdict(diff: float, se: float, n: int) -> str:
    if n < 2:
        return "holds (one seed: no spread to judge noise)" if diff > 0 else "does not hold (one seed)"
    if diff > 2 * se:
        return "holds"
    if diff > 0:
        return "not clear: ahead by less than 2 standard errors"
    return "does not hold"


def _find(rows: list[dict], role_name: str, budget: str | None = None) -> dict | None:
    mine = [r for r in rows if r["role"] == role_name]
    if not mine:
        return None
    if budget is None:  # the largest budget of that role
        return max(mine, key=lambda r: r["index_bytes_per_candidate"]["float32"])
    return next((r for r in mine if r["budget"] == budget), None)


def check_directions(rows: list[dict]) -> list[dict]:
    """The paper's four claims, each per quality metric, with the numbers behind the verdict."""
    out = []
    meta = sorted((r for r in rows if r["role"] == "metaembed"),
                  key=lambda r: r["index_bytes_per_candidate"]["float32"])
    for metric, label in DIRECTION_METRICS:
        out.append(_rises(meta, metric, label))
        out.append(_beats("MMR beats no-MMR at (1,1)", _find(rows, "metaembed", "1x1"),
                          _find(rows, "no_mmr", "1x1"), metric, label))
        out.append(_beats("MetaEmbed at its largest budget beats the single vector", _find(rows, "metaembed"),
                          _find(rows, "single_vector"), metric, label))
        out.append(_close(meta, _find(rows, "token_level"), metric, label))
    return out


def _rises(meta: list[dict], metric: str, label: str) -> dict:
    claim = "quality rises with budget (MetaEmbed)"
    points = [(r["budget"], r["quality"][metric]) for r in meta if metric in r["quality"]]
    if len(points) < 2:
        return {"claim": claim, "metric": label, "verdict": "not measured (needs MetaEmbed at two or more budgets)"}
    means = [p[1]["mean"] for p in points]
    step_ok = all(b >= a for a, b in zip(means, means[1:]))
    gain = _compare(points[-1][1], points[0][1])
    verdict = _verdict(gain["diff"], gain["se"], min(points[-1][1]["n"], points[0][1]["n"]))
    if verdict.startswith("holds") and not step_ok:
        verdict = "partly: the largest budget beats the smallest, but not every step rises"
    evidence = " -> ".join(f"{name} {_pct(q)}" for name, q in points)
    return {"claim": claim, "metric": label, "verdict": verdict, "evidence": evidence, **gain}


def _beats(claim: str, a: dict | None, b: dict | None, metric: str, label: str) -> dict:
    if a is None or b is None or metric not in a["quality"] or metric not in b["quality"]:
        return {"claim": claim, "metric": label, "verdict": "not measured (a variant is missing)"}
    gap = _compare(a["quality"][metric], b["quality"][metric])
    n = min(a["quality"][metric]["n"], b["quality"][metric]["n"])
    evidence = (f"{a['variant']} {a['budget']} {_pct(a['quality'][metric])} vs {b['variant']} {b['budget']} "
                f"{_pct(b['quality'][metric])}: {100 * gap['diff']:+.1f} points (standard error {100 * gap['se']:.1f})")
    return {"claim": claim, "metric": label, "verdict": _verdict(gap["diff"], gap["se"], n), "evidence": evidence,
            **gap}


def _close(meta: list[dict], tokens: dict | None, metric: str, label: str) -> dict:
    """Compares token-level with the best MetaEmbed budget whose index is smaller than token-level's:
    the claim is about quality at a fraction of the index, so a budget that costs more does not count."""
    claim = "MetaEmbed gets close to token-level quality at a fraction of its index size"
    meta = [r for r in meta if metric in r["quality"]]
    if not meta or tokens is None or metric not in tokens["quality"]:
        return {"claim": claim, "metric": label, "verdict": "not measured (a variant is missing)"}
    token_bytes = tokens["index_bytes_per_candidate"]["bfloat16"]
    smaller = [r for r in meta if r["index_bytes_per_candidate"]["bfloat16"] < token_bytes]
    best = max(smaller, key=lambda r: r["quality"][metric]["mean"]) if smaller else meta[-1]
    gap = _compare(best["quality"][metric], tokens["quality"][metric])
    if not smaller:
        verdict = "does not hold: no MetaEmbed budget has a smaller index"
    elif gap["diff"] >= -2 * gap["se"]:
        verdict = "holds"
    else:
        verdict = "does not hold: token-level is ahead by more than 2 standard errors"
    if min(best["quality"][metric]["n"], tokens["quality"][metric]["n"]) < 2:
        verdict += " (one seed: no spread to judge noise)"
    size = best["index_bytes_per_candidate"]["bfloat16"] / token_bytes
    evidence = (f"{best['budget']} {_pct(best['quality'][metric])} vs token-level {_pct(tokens['quality'][metric])} "
                f"({100 * gap['diff']:+.1f} points, standard error {100 * gap['se']:.1f}) at {100 * size:.0f}% of "
                f"its index bytes ({best['index_bytes_per_candidate']['bfloat16']:,} vs {token_bytes:,} per candidate, bf16)")
    return {"claim": claim, "metric": label, "verdict": verdict, "evidence": evidence, "index_fraction": size,
            "budget": best["budget"], **gap}


# report -------------------------------------------------------------------------------------------
def _pct(stat: dict) -> str:
    if stat["n"] < 2:
        return f"{100 * stat['mean']:.1f}"
    return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"


def table_markdown(rows: list[dict], chance: dict[str, float]) -> str:
    header = ["model", "budget", "seeds", *[label for _, label in TABLE_METRICS], "index bytes/cand. (bf16)",
              "FLOPs/pair"]
    cells = []
    for row in rows:
        cells.append([f"{row['variant']} ({ROLES[row['role']]})", row["budget"], str(row["seeds"])]
                     + [_pct(row["quality"][m]) if m in row["quality"] else "-" for m, _ in TABLE_METRICS]
                     + [f"{row['index_bytes_per_candidate']['bfloat16']:,}", f"{row['flops_per_pair']:,}"])
    chance_cells = ["chance", "", ""] + [f"{100 * chance[m]:.1f}" if m in chance else "-" for m, _ in TABLE_METRICS]
    return markdown_table(header, cells + [chance_cells + ["", ""]])


def directions_markdown(directions: list[dict]) -> list[str]:
    lines = []
    for d in directions:
        evidence = f": {d['evidence']}" if d.get("evidence") else ""
        lines.append(f"- **{d['claim']}** ({d['metric']}): {d['verdict']}{evidence}")
    return lines


def _context(base: dict, options: BaselinesOptions, seeds: list[int], runs: list[dict], tags: dict[str, str]) -> dict:
    train = base.get("train") or {}
    steps = sorted({r["max_steps"] for r in runs})
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "git_commit": tags["git.commit"] + (" (dirty)" if tags["git.dirty"] == "true" else ""),
        "data_hash": tags["data.hash"],
        "backbone": (base.get("backbone") or {}).get("name_or_path", "tiny"),
        "max_steps": steps, "batch_size": train.get("batch_size"), "seeds": seeds,
        "overrides": options.overrides,
        "wall_seconds": {r["variant"]: r["wall_seconds"] for r in runs if r["wall_seconds"] is not None},
    }


def results_markdown(rows, chance, directions, context, mlflow_run_id: str | None) -> str:
    overrides = ", ".join(f"`{k}={v}`" for k, v in context["overrides"].items()) or "none"
    lines = [
        f"Measured by `metaembed baselines` on {context['date']} (commit `{context['git_commit'][:12]}`, data "
        f"`{context['data_hash'][:12]}`, backbone `{context['backbone']}`, max_steps {context['max_steps']}, "
        f"batch {context['batch_size']}, seeds {context['seeds']}; overrides for every run: {overrides}).",
        "Quality in % as mean ± sample standard deviation over seeds; costs per candidate and per "
        "query-candidate pair at each budget.",
        "",
        table_markdown(rows, chance),
        "",
        "Paper directions, checked automatically (\"holds\": ahead by more than 2 standard errors of the "
        "difference of means):",
        "",
        *directions_markdown(directions),
    ]
    if mlflow_run_id:
        lines += ["", f"MLflow: run `{mlflow_run_id}` (run name `baselines`; the trainings are its children)."]
    return "\n".join(lines)


def write_doc(path: Path, body: str) -> None:
    """Replace the text between the markers (or append a section with them)."""
    block = f"{BEGIN}\n{body}\n{END}"
    text = path.read_text() if path.is_file() else "# Results\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = f"{head}{block}{tail}"
    else:
        text = f"{text.rstrip()}\n\n## Baselines side by side\n\n{block}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _report(out: Path, runs, rows, chance, directions, context, options: BaselinesOptions,
            settings: BaselinesParams, tags: dict[str, str], base: dict) -> dict:
    from metaembed.evaluation import plots

    out.mkdir(parents=True, exist_ok=True)
    figure = plots.save(plots.baselines_figure(rows, chance), out / "baselines.png")
    runs_summary = [{k: r[k] for k in ("variant", "seed", "role", "run_dir", "mlflow_run_id", "wall_seconds")}
                    | {"summary": r["report"]["summary"]} for r in runs]
    results = {"context": context, "chance": chance, "rows": rows, "directions": directions, "runs": runs_summary}
    mlflow_run_id = _log(results, figure, runs, options, tags, base) if options.log_to_mlflow else None
    results["mlflow_run_id"] = mlflow_run_id
    body = results_markdown(rows, chance, directions, context, mlflow_run_id)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "results.md").write_text(body + "\n")
    doc = None
    if options.write_doc:
        doc = Path(options.results_doc or settings.results_doc)
        write_doc(doc, body)
    return {"out_dir": str(out), "results_doc": str(doc) if doc else None, "mlflow_run_id": mlflow_run_id,
            "table_markdown": table_markdown(rows, chance), "directions_markdown": directions_markdown(directions),
            "rows": rows, "directions": directions}


def _log(results: dict, figure: Path, runs: list[dict], options: BaselinesOptions, tags: dict[str, str],
         base: dict) -> str:
    from mlflow.tracking import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    from metaembed.evaluation.tracked import flatten, log_results
    from metaembed.tracking import TrackingParams, configure

    tracking = section(base, "tracking", TrackingParams, options.params_path)  # as loaded at the start
    experiment_id = configure(tracking)
    client = MlflowClient()
    parent = client.create_run(experiment_id, run_name="baselines",
                               tags=tags | {"metaembed.stage": "baselines"}).info.run_id
    metrics = {}
    for row in results["rows"]:
        for metric, stat in row["quality"].items():
            metrics |= flatten(f"baselines/{row['variant']}/{row['budget']}/{metric}",
                               {"mean": stat["mean"], "std": stat["std"]})
    log_results(parent, tracking, metrics, {"baselines/results.json": results}, {f"baselines/{figure.name}": figure})
    client.log_text(parent, results_markdown(results["rows"], results["chance"], results["directions"],
                                             results["context"], parent), "baselines/results.md")
    for run in runs:
        if run["mlflow_run_id"]:
            client.set_tag(run["mlflow_run_id"], MLFLOW_PARENT_RUN_ID, parent)
            client.set_tag(run["mlflow_run_id"], "baselines.variant", run["variant"])
            client.set_tag(run["mlflow_run_id"], "baselines.seed", str(run["seed"]))
    client.set_terminated(parent)
    return parent
