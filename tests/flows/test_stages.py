"""metaembed.orchestration.stages: stage commands stream their output, fail with its tail, and
never echo a store's password (a stage's traceback often repeats the tracking URI)."""

from __future__ import annotations

import sys
import textwrap

import pytest

from metaembed.orchestration.stages import StageFailed, run_command

# The URI arrives in two writes, as a pipe may deliver it: masking must not depend on the split.
SPLIT_WRITES = textwrap.dedent("""
    import sys, time
    print("API request to http://alice:s3", end="", flush=True)
    time.sleep(0.3)
    print("cret@mlflow.internal:5000/api/2.0/x failed: [Errno 111] Connection refused", flush=True)
    sys.exit(3)
""")


def test_a_failing_command_streams_and_reports_its_output_with_the_password_masked(tmp_path, capfd):
    with pytest.raises(StageFailed) as failed:
        run_command([sys.executable, "-c", SPLIT_WRITES], tmp_path, "train")

    streamed = capfd.readouterr().out
    assert "http://alice:***@mlflow.internal:5000/api" in streamed and "s3cret" not in streamed
    assert "exit 3" in str(failed.value) and "alice:***@mlflow.internal" in str(failed.value)
    assert "s3cret" not in str(failed.value)
    assert failed.value.transient  # "Connection refused": worth another try


def test_a_succeeding_command_returns_its_output_and_streams_progress_lines(tmp_path, capfd):
    script = "import sys; sys.stdout.write('10%\\r50%\\r100%\\ndone\\n')"
    output = run_command([sys.executable, "-c", script], tmp_path, "prepare")
    assert output == "10%\r50%\r100%\ndone\n"
    assert capfd.readouterr().out == output
