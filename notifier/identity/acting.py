"""Who runs a CLI command that acts for a person: a personal token, else a password prompt.

The token comes from `--token-file PATH` or `$NOTIFIER_TOKEN`; on a terminal without a token the
command asks for the account name and password. `--by NAME` is no longer believed: given with an
account, it must name that account (a guard against acting under the wrong token).

A database without any account (created before accounts existed) keeps working the old way until
its first account is made (`notifier users add`, or `notifier init` for new projects): `--by` is
then the only record of who acted, and every such command says so on stderr.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..actors import actor_name, same_actor
from ..app import App
from ..errors import InputError, PermissionDenied
from .accounts import account_count, authenticate_password, authenticate_token
from .permissions import Account, Permission, authorize

TOKEN_ENV = "NOTIFIER_TOKEN"
LEGACY_WARNING = (
    "warning: this database has no accounts yet, so --by is recorded as typed and not checked; "
    "create accounts with `notifier users add` (see README)"
)


@dataclass(frozen=True)
class Actor:
    """Who acts: an authenticated account, or (legacy databases only) a typed name."""

    account: Account | None
    name: str  # what the audit log and runs record: account.actor, or the typed --by

    def require(self, permission: Permission, *, level: int | None = None, what: str = "") -> None:
        if self.account is not None:
            authorize(self.account, permission, level=level, what=what)


def read_token(token_file: str | None) -> str | None:
    if token_file:
        try:
            text = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InputError(f"{token_file}: cannot read the token file: {exc.strerror or exc}") from None
        if not text:
            raise InputError(f"{token_file}: the token file is empty")
        return text
    value = os.environ.get(TOKEN_ENV, "").strip()
    return value or None


def acting(
    app: App,
    *,
    token_file: str | None = None,
    by: str | None = None,
    ask: Callable[[str], str] = input,
    ask_secret: Callable[[str], str] = getpass.getpass,
    interactive: bool | None = None,
    legacy_by: str | None = None,
) -> Actor:
    """The actor of a command that acts for a person (see the module docstring); `legacy_by`
    names it in a database without accounts when no --by was given."""
    with app.reader.connect() as conn:
        legacy = account_count(conn) == 0
    token = read_token(token_file)
    if legacy and token is None:
        print(LEGACY_WARNING, file=sys.stderr)
        return Actor(None, actor_name(by or legacy_by))
    if token is not None:
        account = authenticate_token(app, token)
    elif interactive if interactive is not None else sys.stdin.isatty():
        name = ask("account: ") if by is None else by
        account = authenticate_password(app, name, ask_secret(f"password for {name}: "))
    else:
        raise PermissionDenied(
            f"this command acts for a person: set {TOKEN_ENV} or pass --token-file PATH "
            "(a personal token from `notifier users token NAME`), or run it on a terminal to log in"
        )
    if by is not None and not same_actor(by, account.name):
        raise PermissionDenied(
            f"--by {actor_name(by)} does not match the account of the token ({account.name})"
        )
    return Actor(account, account.actor)
