"""The project's error types.

NotifierError
 ├── ConfigError        bad or missing configuration (file, key)
 ├── InputError         bad user input with locations (rule files, spreadsheets, requests)
 │    └── RuleError     rule file problems (file:line:column)
 │         └── RenderError  templates failed for residents (no run; no retry, no channel fallback)
 ├── NotFound           a named rule, run or resident does not exist
 ├── StateError         an action not allowed in the current state (approve a cancelled run, ...)
 │    └── TransitionForbidden  a status change the transition table does not allow
 ├── PermissionDenied   the account lacks a permission, is disabled, or could not be authenticated
 ├── NotSent            a claimed message never handed to a provider (the row goes back, no attempt used)
 │    ├── LeaseLapsed   this worker's lease lapsed before the send
 │    └── Withdrawn     claimed ahead, given back when the worker stopped before its turn
 └── ProviderError      a delivery provider refused or failed; the subclass says what may follow
      ├── TransientError   not accepted this time: retry
      ├── PermanentError   refused for good: fail, try the next channel
      ├── AmbiguousError   may have been accepted: `unknown` until reconciled
      └── AccountError     the account cannot send for anyone: pause the provider, fail over

Every error carries a user-facing message; the CLI prints it without a traceback
(unless --debug) and exits with `exit_code`. An error raised with `translatable` also keeps its
gettext message id and values, so the console shows it in the staff's language
(i18n.error_text); the English text stays what the CLI, logs and JSON show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self


class NotifierError(Exception):
    exit_code = 1
    msgid: str | None = None  # the gettext message id, when raised with `translatable`
    params: Mapping[str, Any] = {}

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @classmethod
    def translatable(cls, msgid: str, /, **params: Any) -> Self:
        """The error with message `msgid % params` (msgid in python-format: `%(run)s`), keeping
        both for translation."""
        exc = cls(msgid % params)
        exc.msgid, exc.params = msgid, params
        return exc


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


class RenderError(RuleError):
    """Templates could not be rendered for some residents (file:line of the template): a fault of
    the rule or the data, which no retry and no other channel can mend, so no run is created."""


class NotFound(NotifierError):
    pass


class StateError(NotifierError):
    pass


class TransitionForbidden(StateError):
    """A status change the transition table forbids: a bug in the caller, never a user mistake."""


class ProviderError(NotifierError):
    """A provider could not take a message. Raise one of the three kinds below; the kind says
    what the dispatcher may do next, `code` is the provider's code (kept for the audit) and
    `raw` its answer."""

    retryable: ClassVar[bool] = False
    """Trying again can help and cannot send twice."""
    ambiguous: ClassVar[bool] = False
    """The provider may have accepted the message (the answer was lost): it must not be resent
    blindly; the delivery ends `unknown` until reconciled."""

    def __init__(self, message: str, provider: str, *, code: str | None = None, raw: Any = None) -> None:
        super().__init__(message)
        self.provider, self.code, self.raw = provider, code, raw

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, {self.provider!r}, code={self.code!r})"

    @staticmethod
    def classify(
        retryable: bool, message: str, provider: str, *, code: str | None = None, raw: Any = None
    ) -> "ProviderError":
        """A TransientError or a PermanentError, for answers whose kind is a condition (4xx vs 5xx)."""
        kind = TransientError if retryable else PermanentError
        return kind(message, provider, code=code, raw=raw)


class TransientError(ProviderError):
    """Not accepted this time (rate limited, unavailable, cannot connect): retry later."""

    retryable = True


class PermanentError(ProviderError):
    """Refused for good (invalid number, bad credentials): the delivery fails, the next channel is tried."""


class AmbiguousError(ProviderError):
    """The request may have gone through (timeout after sending, connection lost mid-answer)."""

    ambiguous = True


class AccountError(ProviderError):
    """The provider account cannot send for anyone (balance, suspension, day limit, signature or
    template not approved): the provider is paused and the next one takes over; the message is
    not failed."""


class PermissionDenied(NotifierError):
    """The acting account may not do this (or no account could be authenticated). Carries the
    account and the permission so the refusal can be audited."""

    def __init__(self, message: str, account: Any = None, permission: Any = None) -> None:
        super().__init__(message)
        self.account, self.permission = account, permission


class NotSent(NotifierError):
    """A claimed message that was not handed to the provider: it goes back to `pending` without
    consuming an attempt. `code` is what the row's error_code and the audit say."""

    code = "not_sent"


class LeaseLapsed(NotSent):
    """This worker's lease could not be renewed in time (another worker may settle its rows)."""

    code = "lease"


class Withdrawn(NotSent):
    """A batch claimed ahead (while the one before it was sending) and given back: the worker
    stopped before its turn."""

    code = "withdrawn"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean "x"?)' for a close match, else ''."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""
