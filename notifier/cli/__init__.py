"""The `notifier` command line (DESIGN §6). Exit: 0 ok, 1 error, 2 usage, 3 partial success.

Each command group (one module here) adds its parsers, and every command's parser names its
handler (`set_defaults(handler=...)`): the handler parses its arguments, calls one service and
hands the result to that result's renderer (render.py). Errors are printed here, once, without a
traceback unless --debug.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import InputError, NotifierError
from ..output import emit_json, err_console
from . import audit, lists, project, residents, retention, rules, runs, schedule, send, serve, users

if TYPE_CHECKING:
    from sqlalchemy.exc import DBAPIError

__all__ = ["build_parser", "main"]

GROUPS = (project, residents, rules, schedule, runs, lists, send, serve, audit, retention, users)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="notifier", description="Targeted notification of benefit and subsidy items."
    )
    p.add_argument(
        "--config", metavar="PATH", help="config file (default: $NOTIFIER_CONFIG or ./notifier.toml)"
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"notifier {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for g in GROUPS:
        g.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
        return code
    except NotifierError as exc:
        if args.debug:
            raise
        return _notifier_error(exc, args)
    except Exception as exc:
        # A database refusal (constraint, lock, lost connection): its reason only, never the SQL's
        # parameters (residents' names and numbers; engines hide them too) or a traceback.
        import sqlalchemy as sa

        if args.debug or not isinstance(exc, sa.exc.DBAPIError):
            raise
        return _database_error(exc)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


def _notifier_error(exc: NotifierError, args: argparse.Namespace) -> int:
    """`error: ...` on stderr; with --json an input error is also one JSON object on stdout."""
    if getattr(args, "json", False) and isinstance(exc, InputError):
        emit_json(
            {
                "ok": False,
                "error": exc.message.splitlines()[0],
                "errors": [p.as_json() for p in exc.problems],
            }
        )
    err_console.print(f"error: {exc.message}", markup=False)
    return exc.exit_code


def _database_error(exc: DBAPIError) -> int:
    from ..storage.db import db_error_text

    err_console.print(
        f"error: the database refused the operation ({type(exc.orig).__name__}): "
        f"{db_error_text(exc)} (--debug shows the statement)",
        markup=False,
    )
    return 1
