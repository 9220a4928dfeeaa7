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
class ReadResult(Generic[T]):
    """Records that passed the checks and the problems of those that did not."""

    records: list[T] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    rows_read: int = 0


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
