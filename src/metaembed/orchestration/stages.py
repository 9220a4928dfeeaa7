"""Pipeline commands as Prefect tasks: `metaembed data ensure` and `dvc repro <stage>`, run as
subprocesses whose output streams through (credentials masked), and which failures to retry."""

from __future__ import annotations

import codecs
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml
from prefect import task
from prefect.cache_policies import NO_CACHE

from metaembed.tracking.redact import redact_credentials

TAIL_LINES = 40
# A DVC stage's outcome: run, already up to date here, or unchanged and fetched from the DVC remote.
RAN, SKIPPED, PULLED = "ran", "skipped (unchanged)", "pulled (unchanged)"
# Failures worth another try: another process holds a lock, or a network store hiccuped. Anything
# else (bad params, a bug, a diverged training) fails the same way again, so it stops the flow.
TRANSIENT_MARKERS = ("database is locked", "Unable to acquire lock", "Connection refused", "Connection reset",
                     "Temporary failure in name resolution", "timed out", "503 Service Unavailable")
# Output is passed on a whole line at a time, so a URI split across two reads is still masked.
_LINE_END = re.compile(r"[\r\n]")


class StageFailed(RuntimeError):
    """A command of the pipeline exited non-zero; the message ends with its own last lines."""

    def __init__(self, stage: str, returncode: int, tail: str):
        self.stage, self.returncode = stage, returncode
        self.transient = any(marker in tail for marker in TRANSIENT_MARKERS)
        super().__init__(f"stage {stage!r} failed (exit {returncode}); its last output:\n{redact_credentials(tail)}")


def run_command(command: list[str], cwd: Path, stage: str, extra_env: Mapping[str, str] = {}) -> str:
    """Run `command` with `extra_env` added to this process's environment, streaming its output
    through; return the output or raise StageFailed."""
    env = dict(os.environ) | dict(extra_env)
    # dvc.yaml calls `metaembed`: this interpreter's scripts first, also when the venv is not active.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    seen, pending = [], ""
    while chunk := process.stdout.read1(1 << 16):
        pending += decoder.decode(chunk)
        *complete, pending = _split_after_last_line_end(pending)
        _echo("".join(complete))
        seen.extend(complete)
    process.wait()
    _echo(pending)
    output = "".join(seen) + pending
    if process.returncode != 0:
        lines = [line for line in output.replace("\r", "\n").splitlines() if line.strip()]
        raise StageFailed(stage, process.returncode, "\n".join(lines[-TAIL_LINES:]))
    return output


def _split_after_last_line_end(text: str) -> list[str]:
    ends = [match.end() for match in _LINE_END.finditer(text)]
    return [text[: ends[-1]], text[ends[-1] :]] if ends else [text]


def _echo(text: str) -> None:
    if text:
        sys.stdout.write(redact_credentials(text))
        sys.stdout.flush()


def is_transient(task, task_run, state) -> bool:
    """Prefect's retry condition: retry StageFailed only when transient, and registry errors."""
    from metaembed.registry.store import RegistryError

    try:
        state.result()
    except StageFailed as error:
        return error.transient
    except RegistryError:
        return True
    except Exception:
        return False
    return False


def check_stages(root: Path, stages: list[str]) -> None:
    """Fail before running anything when pipeline.stages names a stage dvc.yaml does not have."""
    dvc_file = root / "dvc.yaml"
    if not dvc_file.is_file():
        raise FileNotFoundError(f"{dvc_file} not found: run the pipeline from the project root")
    known = set((yaml.safe_load(dvc_file.read_text()) or {}).get("stages") or {})
    missing = [stage for stage in stages if stage not in known]
    if missing:
        raise ValueError(f"pipeline.stages lists {missing}, which {dvc_file} does not define "
                         f"(it has {sorted(known)}): add the stages or remove them from pipeline.stages")


def parent_env(parent_run_id: str | None) -> dict[str, str]:
    """What a stage command needs to make its MLflow run a child of the pipeline's run (none without one).

    The environment, not a command-line flag: dvc.yaml's commands and so dvc.lock stay as they are."""
    from metaembed.tracking.pipeline_run import PARENT_RUN_ENV

    return {PARENT_RUN_ENV: parent_run_id} if parent_run_id else {}


@task(name="data-ensure", cache_policy=NO_CACHE)
def ensure_data(root: str, params: str, parent_run_id: str | None = None) -> str:
    command = [sys.executable, "-m", "metaembed.cli", "data", "ensure", "--params", params]
    run_command(command, Path(root), "data ensure", parent_env(parent_run_id))
    return "ok"


@task(name="dvc-stage", task_run_name="dvc repro {stage}", cache_policy=NO_CACHE)
def dvc_stage(stage: str, root: str, parent_run_id: str | None = None) -> str:
    from metaembed.data.dvc_sync import DvcRunner, has_remote

    # With a remote, an unchanged stage whose outputs are missing here (a fresh clone) is pulled
    # from it, as `dvc push` left them, instead of being rebuilt.
    pull = ["--pull"] if has_remote(DvcRunner(Path(root))) else []
    output = run_command([sys.executable, "-m", "dvc", "repro", *pull, stage], Path(root), stage,
                         parent_env(parent_run_id))
    if f"Running stage '{stage}'" in output:
        outcome = RAN
    else:
        outcome = PULLED if f"Pulling data for stage: '{stage}'" in output else SKIPPED
    # A log line of the task run (the flow logs prints): the Prefect UI's flow run page shows each
    # stage's outcome beside its task, where a skipped and a run stage both read "Completed".
    print(f"stage {stage}: {outcome}")
    return outcome
