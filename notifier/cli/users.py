"""`users add | list | disable | reset-password | token`: accounts of staff and auditors (admins)."""

from __future__ import annotations

import argparse
import getpass
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..output import console
from .common import command, group, open_app
from .render import show, table

if TYPE_CHECKING:
    from ..identity import Account
    from .common import SubParsers


def register(sub: SubParsers) -> None:
    users = group(
        sub, "users", "accounts of staff and auditors (admins only, except your own password/token)"
    )
    s = command(users, "add", cmd_add, "a new account with roles (asks for its first password)")
    s.add_argument("name")
    s.add_argument(
        "--role",
        action="append",
        required=True,
        metavar="ROLE",
        help="operator|经办, reviewer|审核, auditor|审计, admin|管理员 (repeat for several)",
    )
    s.add_argument(
        "--level",
        action="append",
        type=int,
        default=[],
        metavar="N",
        help="approval level a reviewer may approve (1-based; repeat for several)",
    )
    s.add_argument("--display", metavar="NAME", help="the name staff read, e.g. 张科长")
    s.add_argument("--unmask", action="store_true", help="may see personal data unmasked (every use audited)")
    s.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    _acting(s)
    s = command(users, "list", cmd_list, "all accounts with roles and levels")
    _acting(s)
    s = command(users, "disable", cmd_disable, "disable an account and revoke its tokens")
    s.add_argument("name")
    _acting(s)
    s = command(users, "reset-password", cmd_reset, "set a new password (admins: anyone; others: themselves)")
    s.add_argument("name")
    s.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    _acting(s)
    s = command(users, "token", cmd_token, "issue a personal API token, shown once")
    s.add_argument("name")
    s.add_argument("--label", help="where the token is used, e.g. 'laptop'")
    _acting(s)


def _acting(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token-file", metavar="PATH", help="personal token (default: $NOTIFIER_TOKEN)")
    parser.add_argument("--by", metavar="USER", help="assert the acting account's name")


def actor_account(app: Any, args: argparse.Namespace) -> Account:
    from ..errors import PermissionDenied
    from ..identity.acting import acting

    who = acting(app, token_file=args.token_file, by=args.by)
    if who.account is None:
        raise PermissionDenied(
            "managing accounts needs an account: create the first admin with `notifier init`"
        )
    return who.account


def new_password(args: argparse.Namespace, name: str) -> str:
    import sys

    from ..errors import InputError

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"new password for {name}: ")
    if getpass.getpass("again: ") != first:
        raise InputError("the two passwords differ")
    return first


@dataclass(frozen=True)
class AccountView:
    account: Account

    def as_json(self) -> dict[str, Any]:
        a = self.account
        return {
            "id": a.id,
            "name": a.name,
            "display": a.display,
            "roles": sorted(a.roles),
            "levels": sorted(a.levels),
            "unmask": a.unmask,
            "disabled": a.disabled,
        }


@dataclass(frozen=True)
class AccountList:
    accounts: list[Account]

    def as_json(self) -> dict[str, Any]:
        return {"accounts": [AccountView(a).as_json() for a in self.accounts]}


@dataclass(frozen=True)
class IssuedToken:
    name: str
    token: str

    def as_json(self) -> dict[str, Any]:
        return {"account": self.name, "token": self.token}


def cmd_add(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..identity import add_account
    from ..identity.permissions import parse_roles

    app = open_app(args)
    by = actor_account(app, args)
    try:
        roles = parse_roles(args.role)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    account = add_account(
        app,
        by,
        args.name,
        roles,
        levels=args.level,
        display=args.display,
        password=new_password(args, args.name),
        unmask=args.unmask,
    )
    show(AccountView(account), _added, args.json)
    return 0


def _added(v: AccountView) -> None:
    console.print(
        f"account {v.account.name} created (id {v.account.id}); "
        f"a token for it: notifier users token {v.account.name}",
        markup=False,
    )


def cmd_list(args: argparse.Namespace) -> int:
    from ..identity import list_accounts

    app = open_app(args)
    show(AccountList(list_accounts(app, actor_account(app, args))), _listed, args.json)
    return 0


def _listed(v: AccountList) -> None:
    from ..i18n import label

    t = table("id", "name", "display", "roles", "levels", "unmask", "status", title="accounts")
    for a in v.accounts:
        t.add_row(
            str(a.id),
            a.name,
            a.display or "",
            "、".join(f"{r.value} {label(r)}" for r in sorted(a.roles)),
            ",".join(map(str, sorted(a.levels))),
            "yes" if a.unmask else "",
            "disabled" if a.disabled else "active",
        )
    console.print(t)


def cmd_disable(args: argparse.Namespace) -> int:
    from ..identity import disable_account

    app = open_app(args)
    show(AccountView(disable_account(app, actor_account(app, args), args.name)), _disabled, args.json)
    return 0


def _disabled(v: AccountView) -> None:
    console.print(f"account {v.account.name} disabled; its tokens are revoked", markup=False)


def cmd_reset(args: argparse.Namespace) -> int:
    from ..identity import reset_password

    app = open_app(args)
    by = actor_account(app, args)
    reset_password(app, by, args.name, new_password(args, args.name))
    show(
        AccountList([]), lambda _: console.print(f"password of {args.name} changed", markup=False), args.json
    )
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from ..identity import issue_token

    app = open_app(args)
    token = issue_token(app, actor_account(app, args), args.name, args.label)
    show(IssuedToken(args.name, token), _token, args.json)
    return 0


def _token(v: IssuedToken) -> None:
    console.print(
        f"token for {v.name} (shown once; keep it like a password):\n{v.token}\n"
        f"use: export NOTIFIER_TOKEN=... or --token-file PATH",
        markup=False,
    )
