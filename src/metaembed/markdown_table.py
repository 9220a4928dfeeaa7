"""The one markdown table writer (GitHub pipe tables, rendered by tabulate) for every report."""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import tabulate


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A pipe table; a `|` inside a cell is escaped so it cannot split the cell."""
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|")

    # disable_numparse keeps every cell exactly as the caller formatted it (no re-rounding).
    return tabulate([[cell(v) for v in row] for row in rows], headers=[cell(h) for h in header],
                    tablefmt="github", disable_numparse=True)
