"""Errors that tell the user exactly where their data is wrong."""
from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """Malformed input: names the file and, when known, the (1-based data) row and the column."""

    def __init__(self, path: str | Path, message: str, row: int | None = None, column: str | None = None):
        self.path, self.row, self.column = Path(path), row, column
        where = str(path)
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {message}")


class IncompleteDatasetError(RuntimeError):
    """A tree with missing parts; lists what is missing instead of silently using the rest."""

    def __init__(self, root: str | Path, problems: list[str]):
        self.root, self.problems = Path(root), problems
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{root}: incomplete dataset ({len(problems)} problems)\n  {shown}{more}")
