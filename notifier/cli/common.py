"""What the command groups share: argument types, the command tree's shape, opening the project.

Imports of the services stay inside functions, so `notifier --help` and a usage error answer
without loading the database layer.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, TypeAlias, TypeVar

if TYPE_CHECKING:
    from ..app import App
    from ..identity import Permission
    from ..identity.acting import Actor
    from ..rules.model import Rule

    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

Handler: TypeAlias = Callable[[argparse.Namespace], int]
R = TypeVar("R")
UNMASK_HELP = "personal data in full (needs [audit] unmask_allowed; audited)"


def iso_date(text: str) -> date:
    """An argparse type: `2026-03-02`, with a usage error that says what was expected."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-03-02") from None


def json_flag() -> argparse.ArgumentParser:
    """The parent parser of every command that can answer in JSON."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    return common


def group(sub: SubParsers, name: str, help: str) -> SubParsers:
    """A command group such as `runs`: its actions are required (`notifier runs` alone is a usage error)."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help)
    actions: SubParsers = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    return actions


def command(
    sub: SubParsers, name: str, handler: Handler, help: str, json: bool = True
) -> argparse.ArgumentParser:
    """One command's parser, answering with `handler` (and `--json` unless json=False)."""
    parser: argparse.ArgumentParser = sub.add_parser(name, parents=[json_flag()] if json else [], help=help)
    parser.set_defaults(handler=handler)
    return parser


def open_app(args: argparse.Namespace) -> App:
    from ..app import App

    return App.open(args.config)


def today(app: App) -> date:
    """The date in the county (the configured timezone), which rules are evaluated for by default."""
    from ..clock import local_today

    return local_today(app.config.timezone)


def find_rule(app: App, rule_id: str) -> Rule:
    from ..rules.load import find_rule as find

    return find(rule_id, app.config.rules_dir, app.dictionary, app.config.templates_dir)


def acting_flags(parser: argparse.ArgumentParser, by_help: str = "assert the acting account's name") -> None:
    """The flags of a command that acts for a person (identity/acting.py decides who that is)."""
    parser.add_argument("--token-file", metavar="PATH", help="personal token (default: $NOTIFIER_TOKEN)")
    parser.add_argument("--by", metavar="USER", help=by_help)


def act(
    app: App, args: argparse.Namespace, permission: Permission, what: str, legacy_by: str | None = None
) -> Actor:
    """Who runs this command, refused (and the refusal audited) unless they hold `permission`."""
    from ..identity.accounts import require
    from ..identity.acting import acting

    who = acting(app, token_file=args.token_file, by=args.by, legacy_by=legacy_by)
    require(app, who.account, permission, what, subject=f"cli:{what}")
    return who


def refusals_audited(app: App, what: str, call: Callable[[], R]) -> R:
    """Run a service; a PermissionDenied it raises (inside its own, rolled back, transaction) is
    audited afterwards in a transaction of its own."""
    from ..errors import PermissionDenied
    from ..identity.accounts import refused

    try:
        return call()
    except PermissionDenied as exc:
        refused(app, exc, f"cli:{what}")
        raise


def unmasking(app: App, args: argparse.Namespace, what: str) -> tuple[str, str | None]:
    """Who sees personal data in full, and why: an account with the `unmask` permission must say
    why (--reason, audited); a database without accounts records the typed --by as before."""
    from ..errors import InputError
    from ..identity import Permission

    who = act(app, args, Permission.UNMASK, what)
    reason = (args.reason or "").strip() or None
    if who.account is not None and reason is None:
        raise InputError("--unmask needs --reason TEXT: why personal data is shown in full (audited)")
    return who.name, reason
