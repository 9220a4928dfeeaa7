"""Bad input, reported by file and row so that the user can find and fix it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Problem:
    file: str
    row: int | None  # None: the whole file
    message: str
    values: dict[str, Any] | None = field(default=None, compare=False)

    def __str__(self) -> str:
        where = f"{self.file} row {self.row}" if self.row is not None else self.file
        return f"{where}: {self.message}"


@dataclass
class FileCounts:
    """One input file's rows: each row read is either kept or quarantined, never lost."""

    rows_read: int = 0
    kept: int = 0
    quarantined: int = 0
    error: str | None = None  # why the whole file was set aside
    # A file whose rows annotate another file's rows (MMEB's hard_negatives.parquet): listed, but
    # left out of the set's totals, which count the set's own rows (queries, pairs, qrels...).
    annotation: bool = False

    def as_dict(self) -> dict[str, Any]:
        counts: dict[str, Any] = {"rows_read": self.rows_read, "kept": self.kept, "quarantined": self.quarantined}
        if self.error is not None:
            counts["error"] = self.error
        if self.annotation:
            counts["annotation"] = True
        return counts


@dataclass
class ReadResult(Generic[T]):
    """Records that passed the checks, the problems of those that did not, and per-file row counts.

    Readers count every row through `keep` or `reject` (or `reject_file`), so that per file
    rows read = kept + quarantined holds by construction, whatever goes wrong."""

    records: list[T] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: dict[str, FileCounts] = field(default_factory=dict)

    @property
    def rows_read(self) -> int:
        return sum(counts.rows_read for counts in self.files.values() if not counts.annotation)

    @property
    def kept(self) -> int:
        return sum(counts.kept for counts in self.files.values() if not counts.annotation)

    @property
    def quarantined(self) -> int:
        return sum(counts.quarantined for counts in self.files.values() if not counts.annotation)

    def keep(self, file: str) -> None:
        counts = self.files.setdefault(file, FileCounts())
        counts.rows_read += 1
        counts.kept += 1

    def reject(self, problem: Problem) -> None:
        """One bad row (problem.row set)."""
        counts = self.files.setdefault(problem.file, FileCounts())
        counts.rows_read += 1
        counts.quarantined += 1
        self.problems.append(problem)

    def reject_file(self, file: str, message: str, rows: int | None) -> None:
        """A file none of whose rows can be used; `rows` None when even its row count is unreadable."""
        counts = self.files.setdefault(file, FileCounts())
        counts.rows_read += rows or 0
        counts.quarantined += rows or 0
        counts.error = message if rows is not None else f"{message} (row count unknown: counted as 0 rows)"
        self.problems.append(Problem(file, None, message))

    def merge(self, other: ReadResult) -> None:
        self.records.extend(other.records)
        self.problems.extend(other.problems)
        for file, counts in other.files.items():
            mine = self.files.setdefault(file, FileCounts(annotation=counts.annotation))
            mine.rows_read += counts.rows_read
            mine.kept += counts.kept
            mine.quarantined += counts.quarantined
            mine.error = mine.error or counts.error


class DataError(ValueError):
    """Bad input data; the message lists each problem with its file and row."""

    def __init__(self, problems: Sequence[Problem], shown: int = 20, hint: str = "") -> None:
        self.problems = list(problems)
        lines = [str(problem) for problem in self.problems[:shown]]
        if len(self.problems) > shown:
            lines.append(f"... and {len(self.problems) - shown} more")
        hint = hint or ("fix or remove these rows, or set `prepare.on_bad_rows: quarantine` in params.yaml "
                        "to set them aside in a quarantine file")
        super().__init__(f"{len(self.problems)} problem(s) in the input data:\n  " + "\n  ".join(lines)
                         + f"\n{hint}")


def raise_if_any(result: ReadResult, shown: int = 20) -> None:
    if result.problems:
        raise DataError(result.problems, shown)
