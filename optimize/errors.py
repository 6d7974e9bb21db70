"""The one error family the CLI turns into a clean message and a non-zero exit."""

from __future__ import annotations

from functools import partial


class KilnError(Exception):
    """Base class of every error that is the user's to fix (bad file, bad config, bad option)."""


class DataError(KilnError):
    """A data file is invalid. The message names file, row, column, the bad value and the fix.

    ``row`` counts lines as a spreadsheet shows them (the header is line 1).
    """

    def __init__(
        self,
        file: str,
        problem: str,
        fix: str,
        *,
        row: int | None = None,
        column: str | None = None,
        value: object = None,
    ) -> None:
        self.file, self.row, self.column, self.value = file, row, column, value
        self.problem, self.fix = problem, fix
        where = file
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column {column!r}"
        shown = "" if value is None else f" (value {value!r})"
        super().__init__(f"{where}: {problem}{shown}. Fix: {fix}")

    def __reduce__(self):
        """Rebuilt from its fields, so it crosses a process boundary (a benchmark cell that fails in a worker
        reports this error, not a broken process pool)."""
        rebuild = partial(type(self), row=self.row, column=self.column, value=self.value)
        return rebuild, (self.file, self.problem, self.fix)
