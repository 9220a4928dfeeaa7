"""Where a benchmark's results go: the JSON report and its PNG, both optional."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_report(report: dict[str, Any], output: Path | None, plot: Path | None,
                 draw: Callable[[dict[str, Any], Path], object]) -> None:
    """`report` as JSON at `output` and `draw(report, plot)` at `plot` (each skipped when None)."""
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=2) + "\n")
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        draw(report, plot)
