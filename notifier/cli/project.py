"""`init` and `demo`: a new county folder, or the whole flow on generated sample data."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..output import console
from .common import command
from .render import show, table

if TYPE_CHECKING:
    from ..demo import DemoSummary
    from .common import SubParsers

REPO = Path(__file__).resolve().parents[2]  # config.example.toml, rules/ and templates/ to copy


def register(sub: SubParsers) -> None:
    s = command(sub, "init", cmd_init, "create notifier.toml, rules/, templates/ and the database in DIR")
    s.add_argument("dir", nargs="?", default=".", type=Path)
    s.add_argument(
        "--admin", default="admin", metavar="NAME", help="name of the first admin account (default: admin)"
    )
    s.add_argument("--display", metavar="NAME", help="the admin's name as staff read it, e.g. 王科长")
    s = command(sub, "demo", cmd_demo, "the whole flow on generated sample data with local sinks")
    s.add_argument("--dir", type=Path, default=Path("demo"), help="where the demo writes (default: ./demo)")
    s.add_argument("--residents", type=int, default=2000)


@dataclass(frozen=True)
class Initialised:
    config: Path
    database: str  # the URL with any password masked
    admin: str | None = None  # the first admin account, when this init created it
    token: str | None = None  # its personal token, shown this once

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"config": str(self.config), "database": self.database}
        if self.admin:
            out |= {"admin": self.admin, "token": self.token}
        return out


def init_project(
    target: Path,
    admin: str = "admin",
    display: str | None = None,
    password: Callable[[], str | None] | None = None,
) -> Initialised:
    """Copy what is missing (never overwrite a county's own files), create the database, and the
    first admin account with a personal token if the database has no account yet."""
    from ..app import App
    from ..config import load_config, masked_url
    from ..identity import Role, add_account, issue_token
    from ..identity.accounts import account_count
    from ..storage.db import open_database

    target.mkdir(parents=True, exist_ok=True)
    cfg = target / "notifier.toml"
    if not cfg.exists():
        shutil.copyfile(REPO / "config.example.toml", cfg)
    for folder in ("rules", "templates"):
        dest = target / folder
        if not dest.exists():
            shutil.copytree(REPO / folder, dest)
    config = load_config(cfg)
    open_database(config.database_url).dispose()
    app = App.open(config)
    try:
        with app.reader.connect() as conn:
            if account_count(conn):
                return Initialised(cfg.resolve(), masked_url(config.database_url))
        account = add_account(
            app,
            None,
            admin,
            frozenset({Role.ADMIN}),
            display=display,
            password=password() if password else None,
        )
        token = issue_token(app, account, account.name, "notifier init")
    finally:
        app.close()
    return Initialised(cfg.resolve(), masked_url(config.database_url), account.name, token)


def cmd_init(args: argparse.Namespace) -> int:
    import getpass
    import sys

    def password() -> str | None:  # on a terminal the admin also gets a password (for the console)
        return getpass.getpass(f"password for {args.admin} (console login; empty: token only): ") or None

    show(
        init_project(args.dir, args.admin, args.display, password if sys.stdin.isatty() else None),
        _initialised,
        args.json,
    )
    return 0


def _initialised(r: Initialised) -> None:
    console.print(f"wrote {r.config}\ndatabase {r.database}", markup=False)
    if r.admin:
        console.print(
            f"admin account {r.admin!r} created; its personal token (shown once, keep it like a password):\n"
            f"  {r.token}\n"
            "add staff: NOTIFIER_TOKEN=<token> notifier users add NAME --role operator|reviewer|auditor "
            "[--level N] [--display 张科长]",
            markup=False,
        )
    console.print("next: notifier residents import FILE", markup=False)


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    show(run_demo(args.dir, args.residents, progress=not args.json), _demo_summary, args.json)
    return 0


DEMO_COLUMNS = (
    "rule",
    "run",
    "matched",
    "review",
    "SMS",
    "SMS parts",
    "e-mail",
    "letter",
    "skipped",
    "failed",
    "status",
)


def _demo_summary(s: DemoSummary) -> None:
    r = s.as_json()["residents"]
    console.print(f"\n[bold]notifier demo[/bold] — {s.on}, folder {s.dir}")
    console.print(
        f"residents.csv (GBK): imported {r['imported']}, rejected {r['rejected']} "
        f"(rows {', '.join(map(str, r['rejected_rows']))}), {r['warnings']} contact warnings; "
        f"grants imported {s.grants.imported}"
    )
    t = table(title="campaigns")
    for col in DEMO_COLUMNS:
        t.add_column(col, justify="right" if col not in ("rule", "status") else "left")
    for x in s.runs:
        bc = x.by_channel
        t.add_row(
            x.rule,
            *map(str, (x.run, x.match, x.review, bc.get("sms", 0), x.sms_segments)),
            *map(str, (bc.get("email", 0), bc.get("letter", 0), x.skipped, x.failed)),
            x.status,
        )
    console.print(t)
    first = next((x.sample for x in s.runs if x.sample), None)
    if first:
        console.print(
            f"sample ({first['channel']}, personal data masked): {first['body'][:200]}", markup=False
        )
    console.print(
        f"SMS outbox:   {s.outbox}/run-N/*.sms.txt\nletters:      {s.letters}/run-N.html (+ roster CSV)\n"
        f"e-mail:       {s.mailbox_messages} messages received by the local SMTP server in {s.mailbox_dir}\n"
        f"audit log:    {s.audit_events} events, chain " + ("intact" if s.audit_ok else "BROKEN")
    )
    console.print("try: notifier --config demo/notifier.toml runs list")
