"""The study's closing report: summary.json, the best configuration as a params.yaml patch,
and PNG plots (Optuna's matplotlib backend), all logged to the MLflow parent run."""

from __future__ import annotations

import difflib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedSeq

from metaembed.markdown_table import markdown_table
from metaembed.tracking.redact import redact_uri
from metaembed.tuning import space
from metaembed.tuning.objective import OBJECTIVE_NAMES

PATCH_FILE, BEST_FILE, SUMMARY_FILE = "best_params.patch", "best_params.yaml", "summary.json"


def best_changes(config: dict[str, Any]) -> dict[str, Any]:
    """The dotted params.yaml keys a best configuration sets."""
    groups = [[int(q), int(c), round(float(w), 4)] for q, c, w in config["groups"]]
    return {"loss.groups": groups, "loss.temperature": round(float(config["temperature"]), 5),
            "train.lr": float(f"{config['lr']:.3g}")}


def patch_text(params_text: str, changes: dict[str, Any], name: str = "params.yaml") -> str:
    """A unified diff (for `git apply`) setting each dotted key, edited by round-trip YAML so that
    comments, order and layout stay; a changed list is written flow style, on one line."""
    yaml_rt = _round_trip_yaml()
    document = yaml_rt.load(params_text)
    for key, value in changes.items():
        section_name, field = key.split(".", 1)
        section = document.get(section_name) if document is not None else None
        if section is None or field not in section:
            raise ValueError(f"{key}: not found in the params file; set it by hand from {BEST_FILE}")
        section[field] = _flow(value)
    out = io.StringIO()
    yaml_rt.dump(document, out)
    return "".join(difflib.unified_diff(params_text.splitlines(keepends=True), out.getvalue().splitlines(keepends=True),
                                        f"a/{name}", f"b/{name}"))


def _round_trip_yaml() -> YAML:
    yaml_rt = YAML()
    yaml_rt.preserve_quotes = True
    yaml_rt.width = 10_000
    yaml_rt.indent(mapping=2, sequence=4, offset=2)
    # ruamel writes None as an empty value; params.yaml spells it `null`.
    yaml_rt.representer.add_representer(
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml_rt


def _flow(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    sequence = CommentedSeq(_flow(item) for item in value)
    sequence.fa.set_flow_style()
    return sequence


def dvc_command(changes: dict[str, Any]) -> str:
    sets = " ".join(f"--set-param '{k}={json.dumps(v)}'" for k, v in changes.items())
    return f"dvc exp run {sets}"


def _trial_row(trial, ladder) -> dict[str, Any]:
    row = {"number": trial.number, "state": trial.state.name, "values": trial.values,
           "source": trial.user_attrs.get("source", "sampled"), "mlflow_run_id": trial.user_attrs.get("mlflow_run_id"),
           "quality": trial.user_attrs.get("quality")}
    if space.is_complete(trial.params):
        row["config"] = space.decode(trial.params, ladder)
    if trial.datetime_start and trial.datetime_complete:
        row["seconds"] = round((trial.datetime_complete - trial.datetime_start).total_seconds(), 1)
    return row


def write_report(study, tune, ladder, ctx, params_path, pid: int) -> dict[str, Any]:
    out = ctx.study_dir
    out.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    rows = [_trial_row(t, ladder) for t in trials]
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    summary: dict[str, Any] = {
        "study": tune.study_name, "storage": redact_uri(tune.storage_url(str(ctx.root))), "mode": tune.mode,
        "objectives": OBJECTIVE_NAMES[tune.mode], "quality_metric": tune.quality_metric,
        "budgets": [list(b) for b in ctx.budgets], "trials": rows,
        "states": {s: sum(r["state"] == s for r in rows) for s in {r["state"] for r in rows}},
        "parent_run_id": ctx.parent_run_id, "written_by_pid": pid,
    }
    baseline = next((r for r in complete if r["source"] == "params.yaml"), None)
    summary["params_yaml_trial"] = baseline
    if tune.mode == "single" and complete:
        best = max(complete, key=lambda r: r["values"][0])
        summary["best"] = best
        if baseline is not None:
            summary["best_minus_params_yaml"] = best["values"][0] - baseline["values"][0]
        summary |= _write_patch(best["config"], params_path, out)
    elif complete:
        summary["pareto_front"] = [_trial_row(t, ladder) for t in study.best_trials]
    summary["plots"] = write_plots(study, tune, out / "plots")
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=1, default=str) + "\n")
    return summary


def _write_patch(config: dict[str, Any], params_path, out: Path) -> dict[str, Any]:
    changes = best_changes(config)
    (out / BEST_FILE).write_text(yaml.safe_dump({k: v for k, v in changes.items()}, sort_keys=False))
    info = {"best_params": str(out / BEST_FILE), "dvc_exp_run": dvc_command(changes)}
    try:
        text = patch_text(Path(params_path).read_text(), changes, Path(params_path).name)
    except ValueError as error:
        info["patch_error"] = str(error)
        return info
    (out / PATCH_FILE).write_text(text)
    info["patch"] = str(out / PATCH_FILE)
    return info


def write_plots(study, tune, folder: Path) -> dict[str, str]:
    """name -> PNG path, or name -> "skipped: why" (e.g. importances need two finished trials)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm
    from optuna.exceptions import ExperimentalWarning

    folder.mkdir(parents=True, exist_ok=True)
    names = OBJECTIVE_NAMES[tune.mode]
    jobs = {}
    if tune.mode == "single":
        jobs["history"] = lambda: ovm.plot_optimization_history(study, target_name=names[0])
        jobs["importances"] = lambda: ovm.plot_param_importances(study, target_name=names[0])
        if tune.pruning.enabled:
            jobs["intermediate_values"] = lambda: ovm.plot_intermediate_values(study)
    else:
        jobs["pareto_front"] = lambda: ovm.plot_pareto_front(study, target_names=names)
        for i, name in enumerate(names):
            jobs[f"history_{name}"] = lambda i=i, name=name: ovm.plot_optimization_history(
                study, target=lambda t: t.values[i], target_name=name)
            # The default evaluator (PED-ANOVA) ranks params by how they reach LOW targets: negate.
            jobs[f"importances_{name}"] = lambda i=i, name=name: ovm.plot_param_importances(
                study, target=lambda t: -t.values[i], target_name=f"-{name}")
    written = {}
    for name, draw in jobs.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)  # the matplotlib backend is "experimental"
                warnings.simplefilter("ignore", UserWarning)  # "few trials per regime": expected early on
                axes = draw()
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            written[name] = f"skipped: {error}"
            continue
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
        figure.set_size_inches(7, 4.5)
        figure.tight_layout()
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written[name] = str(path)
    return written


def log_report(parent_run_id: str, summary: dict[str, Any], out: Path) -> None:
    from mlflow.tracking import MlflowClient

    from metaembed.tracking import log_dict_artifact, log_figure

    client = MlflowClient()
    for name, path in summary["plots"].items():
        if not path.startswith("skipped"):
            log_figure(parent_run_id, path, f"plots/{Path(path).name}")
    log_dict_artifact(parent_run_id, summary, "tune/summary.json")
    for file in (BEST_FILE, PATCH_FILE):
        if (out / file).is_file():
            client.log_artifact(parent_run_id, str(out / file), "tune")
    for state, count in summary["states"].items():
        client.log_metric(parent_run_id, f"tune/trials_{state.lower()}", count)
    if "best" in summary:
        client.log_metric(parent_run_id, "tune/best_mean_quality", summary["best"]["values"][0])
        client.set_tag(parent_run_id, "optuna.best_trial", str(summary["best"]["number"]))
    client.set_terminated(parent_run_id, "FINISHED")


def summary_markdown(summary: dict) -> str:
    """The study for the Prefect artifact: every trial, then the best one or the Pareto front."""
    rows = []
    for row in summary["trials"]:
        config = row.get("config") or {}
        values = ", ".join(f"{v:.4f}" for v in row["values"] or []) or "-"
        rows.append([row["number"], row["source"], row["state"], values, config.get("groups"),
                     f"{config.get('temperature', float('nan')):.4g}", f"{config.get('lr', float('nan')):.3g}"])
    lines = [f"# Tuning study `{summary['study']}` ({summary['mode']})", "",
             f"storage `{summary['storage']}`, trials {summary['states']}, MLflow parent run "
             f"`{summary['parent_run_id']}`", "",
             markdown_table(["trial", "source", "state", "objective", "groups", "temperature", "lr"], rows)]
    if "best" in summary:
        lines += ["", f"best: trial {summary['best']['number']}; apply with `git apply {summary.get('patch')}` "
                  f"or `{summary['dvc_exp_run']}`"]
    if "pareto_front" in summary:
        lines += ["", f"Pareto front: trials {[row['number'] for row in summary['pareto_front']]}"]
    return "\n".join(lines) + "\n"
