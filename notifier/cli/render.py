"""One renderer per result type, for the terminal; `--json` prints the result's `as_json()` instead.

A result is any object with `as_json()` (the JSON contract of DESIGN §6, kept by the service that
computes it); its renderer is a function taking exactly that type, so a handler only picks the
pair and the type checker sees that they fit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from rich.console import JustifyMethod
from rich.table import Table

from ..errors import Problem
from ..output import console, emit_json, err_console


class Result(Protocol):
    def as_json(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Result)


def show(result: R, render: Callable[[R], None], as_json: bool) -> None:
    """Exactly one JSON object on stdout with --json, else the terminal form."""
    if as_json:
        emit_json(result.as_json())
    else:
        render(result)


@dataclass(frozen=True)
class Payload:
    """A service answer that is still a JSON dict (runs, delivery and checkpoints return dicts
    today). Its renderer reads the keys the JSON contract fixes; once the service returns a
    dataclass, the renderer takes that type instead."""

    data: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return self.data


@dataclass(frozen=True)
class LocalPayload(Payload):
    """A payload with stored (UTC) times, shown in the configured timezone on a terminal."""

    tz: ZoneInfo


def table(*columns: str, title: str | None = None, justify: JustifyMethod = "left") -> Table:
    t = Table(title=title)
    for col in columns:
        t.add_column(col, justify=justify)
    return t


def problems_table(title: str, problems: Sequence[Problem], limit: int = 50) -> None:
    t = table("row", "column", "message", title=title)
    for p in problems[:limit]:
        t.add_row(str(p.row or ""), str(p.column or ""), p.message)
    console.print(t)
    if len(problems) > limit:
        console.print(f"... and {len(problems) - limit} more (use --json for all)")


def print_problems(problems: Sequence[Problem]) -> None:
    """Located problems on stderr, one a line, as editors jump to them (file:line: message)."""
    for p in problems:
        err_console.print(str(p), markup=False)
