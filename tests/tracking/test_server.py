"""The team tracking server (`metaembed services`: MLflow on PostgreSQL, artifacts served by it) under
concurrent writers, as several people's trainings hit it at once."""

import json
import os
import subprocess
import sys
import time

from mlflow.tracking import MlflowClient

TRAININGS = 4


def test_four_trainings_log_at_once_and_every_metric_arrives(services, write_params, tmp_path):
    paths = [write_params({"train.seed": k, "train.output_dir": str(tmp_path / f"run{k}" / "model"),
                           "train.report_dir": str(tmp_path / f"run{k}" / "report"),
                           "train.checkpoint_dir": str(tmp_path / f"run{k}" / "checkpoints")},
                          name=f"params{k}.yaml") for k in range(TRAININGS)]
    env = os.environ | {"MLFLOW_TRACKING_URI": services.tracking_uri, "OMP_NUM_THREADS": "1"}
    started = time.monotonic()
    processes = [subprocess.Popen([sys.executable, "-m", "metaembed.cli", "train", "--params", str(path)],
                                  cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                 for path in paths]
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    wall = time.monotonic() - started
    assert [p.returncode for p in processes] == [0] * TRAININGS, "\n".join(o[-3000:] for o in outputs)

    client = MlflowClient(services.tracking_uri)
    run_ids = set()
    for k in range(TRAININGS):
        report = json.loads((tmp_path / f"run{k}" / "report" / "metrics.json").read_text())
        run = client.get_run(report["mlflow_run_id"])
        run_ids.add(run.info.run_id)
        assert run.info.status == "FINISHED"
        assert run.data.params["train.seed"] == str(k)
        # Every metric the training logged reached the server, with its final value.
        logged = {key: value for key, value in report["metrics"].items() if "/" in key}
        assert len(logged) >= 8
        for key, value in logged.items():
            assert abs(run.data.metrics[key] - value) < 1e-6, (k, key)
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "train/loss"))
        assert steps == [0, 1, 2, 3], steps
        # Artifacts went through the server into its folder, not onto this client's disk.
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
        stored = services.root / "mlartifacts" / run.info.experiment_id / run.info.run_id / "artifacts"
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
        assert artifacts and all((stored / path).exists() for path in artifacts), artifacts
    assert len(run_ids) == TRAININGS
    print(f"{TRAININGS} concurrent trainings against the server: {wall:.1f} s wall")
