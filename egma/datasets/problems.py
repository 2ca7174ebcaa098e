"""Partial trees are reported, never silently used.

Readers collect what is missing (a reading folder without gaze.csv, a study without its report,
a CSV row whose image file is absent) in a ProblemLog and call `finish` once at the end: by
default that raises IncompleteTreeError listing everything; with allow_partial=True it warns
with the count and the reader returns what is complete.
"""
from __future__ import annotations

import logging
import warnings
from collections import Counter
from pathlib import Path

from egma.datasets.errors import DataFormatError, IncompleteDatasetError

log = logging.getLogger("egma.datasets")


class IncompleteTreeError(IncompleteDatasetError, DataFormatError):
    """An incomplete tree. It is also a DataFormatError located at the first problem (file, row,
    column), because a dangling reference -- an image id with no image -- is a format error too."""

    def __init__(self, root: str | Path, problems: list[DataFormatError]):
        IncompleteDatasetError.__init__(self, root, [str(p) for p in problems])
        first = problems[0]
        self.path, self.row, self.column = first.path, first.row, first.column


class ProblemLog:
    """Problems met while reading one tree, plus counts of deliberately skipped items."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.problems: list[DataFormatError] = []
        self.skipped: Counter[str] = Counter()

    def add(self, path: str | Path, message: str, row: int | None = None, column: str | None = None) -> None:
        self.problems.append(DataFormatError(path, message, row=row, column=column))

    def skip(self, reason: str, count: int = 1) -> None:
        """Count items left out on purpose (e.g. REFLACX readings with discarded eye tracking)."""
        if count:
            self.skipped[reason] += count

    def finish(self, allow_partial: bool) -> None:
        for reason, count in self.skipped.items():
            log.info("%s: skipped %d (%s)", self.root, count, reason)
        if not self.problems:
            return
        if not allow_partial:
            raise IncompleteTreeError(self.root, self.problems)
        warnings.warn(f"{self.root}: {len(self.problems)} incomplete item(s) left out "
                      f"(first: {self.problems[0]})", stacklevel=3)


class StudyList(list):
    """A reader's result: a plain list of items, plus what was skipped and what was incomplete."""

    def __init__(self, items=(), log_: ProblemLog | None = None):
        super().__init__(items)
        self.skipped: dict[str, int] = dict(log_.skipped) if log_ else {}
        self.problems: list[str] = [str(p) for p in log_.problems] if log_ else []
