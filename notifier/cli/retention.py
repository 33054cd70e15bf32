"""`retention apply`: remove personal data past its retention period ([retention], docs/retention.md).

`serve` does the same once a day; this is for the first run on an old database, a dry run to see
what would go, and counties that run the job from cron. An administrator's job (accounts.manage):
the audit events name `system:retention` and who started it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..identity.permissions import Permission
from ..output import console, progress_bar
from .common import act, acting_flags, command, group, open_app

if TYPE_CHECKING:
    from ..retention.purge import RetentionReport
    from .common import SubParsers


def register(sub: SubParsers) -> None:
    ret = group(sub, "retention", "remove personal data past its retention period")
    s = command(ret, "apply", cmd_apply, "remove bodies, contacts and files past [retention]'s days")
    s.add_argument("--dry-run", action="store_true", help="count what would be removed, change nothing")
    acting_flags(s)


def cmd_apply(args: argparse.Namespace) -> int:
    from ..cli.render import show
    from ..retention.purge import apply_retention

    app = open_app(args)
    who = act(app, args, Permission.ACCOUNTS, "apply retention")
    with progress_bar("retention", None, not args.json) as (advance, set_total):
        report = apply_retention(
            app, dry_run=args.dry_run, by=who.name, progress=advance, set_total=set_total
        )
    show(report, _applied, args.json)
    return 0


def _applied(r: RetentionReport) -> None:
    verb = "would remove" if r.dry_run else "removed"
    console.print(
        f"retention {verb}: {r.messages} message(s) and {r.deliveries} delivery contact(s) "
        f"of {r.runs} run(s), "
        f"{r.files} file(s), {r.residents} left resident(s)' data ({r.records} record(s))",
        markup=False,
    )
