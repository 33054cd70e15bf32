"""Printing results: one JSON object with --json, rich tables and progress bars on a terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Callable
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# Wide enough for the summary tables when output goes to a file or a pipe.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 132)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def local_time(value: datetime | str | None, tz: ZoneInfo) -> str:
    """`2026-03-02 09:00 +08:00`: a stored time as people in the county read it, with the offset so
    it is never ambiguous (JSON keeps ISO 8601). Naive values are UTC, as stored."""
    if value is None or value == "":
        return ""
    from .clock import as_utc

    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    local = as_utc(when).astimezone(tz)
    offset = local.strftime("%z")
    return local.strftime("%Y-%m-%d %H:%M ") + offset[:3] + ":" + offset[3:]


def emit_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


@contextmanager
def progress_bar(
    description: str, total: int | None, enabled: bool
) -> Iterator[tuple[Callable[[int], None], Callable[[int | None], None]]]:
    """(advance, set_total); a silent no-op unless enabled and stderr is a terminal."""
    if not enabled or not err_console.is_terminal:
        yield (lambda n: None), (lambda t: None)
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as prog:
        task = prog.add_task(description, total=total)
        yield (lambda n: prog.advance(task, n)), (lambda t: prog.update(task, total=t))
