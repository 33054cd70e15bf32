"""`schedule list`: each scheduled notice's next and last firing, approval state and version."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..output import console, local_time
from .common import command, group, open_app
from .render import print_problems, show, table

if TYPE_CHECKING:
    from ..scheduling.listing import ScheduledNotice, ScheduleListing
    from .common import SubParsers


def register(sub: SubParsers) -> None:
    sched = group(sub, "schedule", "scheduled notices")
    command(sched, "list", cmd_list, "each notice's next and last firing, approval state and version")


def cmd_list(args: argparse.Namespace) -> int:
    """A broken rule file is reported and the other notices are listed (exit 3)."""
    from ..scheduling.listing import list_schedule

    listing = list_schedule(open_app(args))
    show(listing, _listed, args.json)
    return listing.exit_code


def _listed(listing: ScheduleListing) -> None:
    tz = listing.tz
    t = table(
        "rule",
        "schedule",
        "state",
        "next",
        "approved",
        "version",
        "last firing",
        title=f"scheduled notices ({tz.key})",
    )
    for n in listing.notices:
        t.add_row(
            n.rule,
            _when(n, listing),
            n.state,
            local_time(n.next, tz),
            f"{len(n.approval.approvals)}/{len(n.approval.levels)}",
            n.version[:12],
            f"{local_time(n.last.scheduled_at, tz)} {n.last.status}" if n.last else "",
        )
    console.print(t)
    print_problems(listing.errors)


def _when(n: ScheduledNotice, listing: ScheduleListing) -> str:
    return f"once {local_time(n.once, listing.tz)}" if n.once else f"cron {n.schedule['cron']}"
