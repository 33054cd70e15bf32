"""The project's error types.

NotifierError
 ├── ConfigError        bad or missing configuration (file, key)
 ├── InputError         bad user input with locations (rule files, spreadsheets, requests)
 │    └── RuleError     rule file problems (file:line:column)
 ├── NotFound           a named rule, run or resident does not exist
 ├── StateError         an action not allowed in the current state (approve a cancelled run, ...)
 └── ProviderError      a delivery provider refused or failed; says whether a retry can help

Every error carries a user-facing message; the CLI prints it without a traceback
(unless --debug) and exits with `exit_code`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable


class NotifierError(Exception):
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(NotifierError):
    pass


@dataclass(frozen=True)
class Problem:
    """One located problem: a file position (line/column, 1-based) or a spreadsheet cell (row/column)."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | str | None = None
    row: int | None = None

    def __str__(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        elif self.row is not None:
            where += f": row {self.row}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}" if where else self.message

    def as_json(self) -> dict[str, Any]:
        keys = ("file", "line", "column", "row", "message")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


class InputError(NotifierError):
    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        self.problems = problems or []
        detail = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(message + ("\n" + detail if detail else ""))


class RuleError(InputError):
    pass


class NotFound(NotifierError):
    pass


class StateError(NotifierError):
    pass


@dataclass
class ProviderError(NotifierError):
    """A provider could not take a message. `retryable`: trying again can help and cannot send
    twice. `ambiguous`: the provider may have accepted the message (the answer was lost), so it
    must not be resent blindly; the delivery ends `unknown` until reconciled."""

    message: str
    provider: str
    retryable: bool
    code: str | None = None
    raw: Any = field(default=None, repr=False)
    ambiguous: bool = False

    def __post_init__(self) -> None:
        NotifierError.__init__(self, self.message)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean "x"?)' for a close match, else ''."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""
