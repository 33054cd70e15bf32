"""`lists publish | list | show`: a run's public 公示 list for the notice board and the website."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..identity.permissions import Permission
from ..output import console, local_time
from .common import act, acting_flags, command, find_rule, group, iso_date, open_app, today
from .render import LocalPayload, Payload, show, table

if TYPE_CHECKING:
    from .common import SubParsers


def register(sub: SubParsers) -> None:
    lists = group(sub, "lists", "publish and inspect public 公示 lists")
    s = command(
        lists,
        "publish",
        cmd_publish,
        "publish the public list of the rule's latest approved or completed run (HTML and PDF)",
    )
    s.add_argument("rule")
    s.add_argument("--on", type=iso_date, help="first day of the public period (default: today)")
    s.add_argument("--days", type=int, default=7, metavar="N", help="days the list is public (default: 7)")
    s.add_argument("-o", "--output", type=Path, metavar="DIR", help="also write the HTML and PDF here")
    acting_flags(s)
    s = command(lists, "list", cmd_list, "every published list, newest first")
    s.add_argument("--rule", metavar="RULE", help="only this rule's lists")
    s = command(lists, "show", cmd_show, "one published list: its run, period and SHA-256 digests")
    s.add_argument("list", type=int)


def cmd_publish(args: argparse.Namespace) -> int:
    from ..disclosure import publish_list

    app = open_app(args)
    rule = find_rule(app, args.rule)
    who = act(app, args, Permission.LISTS_PUBLISH, "publish public lists")
    done = publish_list(app, rule, args.on or today(app), who.name, days=args.days, out_dir=args.output)
    out = done.as_json() | {"url": f"{app.config.serve.public_url.rstrip('/')}/lists/{done.id}"}
    show(Payload(out), _published, args.json)
    return 0


def _published(r: Payload) -> None:
    x = r.data
    console.print(
        f"list {x['list']} published: {x['title']} (run {x['run']}, {x['rows']} households), "
        f"public {x['valid_from']} to {x['valid_until']}",
        markup=False,
    )
    console.print(f"SHA-256 {x['sha256']}; PDF {x['pdf']}; web {x['url']}", markup=False)


def cmd_list(args: argparse.Namespace) -> int:
    from ..disclosure import published_lists

    app = open_app(args)
    items = [x.as_json() for x in published_lists(app, args.rule)]
    show(LocalPayload({"lists": items}, app.config.timezone), _listed, args.json)
    return 0


def _listed(r: LocalPayload) -> None:
    t = table("list", "rule", "run", "from", "until", "rows", "published", "by", title="public lists")
    for x in r.data["lists"]:
        t.add_row(
            str(x["list"]),
            x["rule"],
            str(x["run"]),
            x["valid_from"],
            x["valid_until"],
            str(x["rows"]),
            local_time(x["published_at"], r.tz),
            x["published_by"],
        )
    console.print(t)


def cmd_show(args: argparse.Namespace) -> int:
    from ..disclosure import published_list

    app = open_app(args)
    item, _ = published_list(app, args.list)
    state = item.state(today(app))
    show(LocalPayload(item.as_json() | {"state": state}, app.config.timezone), _shown, args.json)
    return 0


def _shown(r: LocalPayload) -> None:
    x = r.data
    for key in ("list", "rule", "run", "title", "valid_from", "valid_until", "state", "rows", "pdf"):
        console.print(f"{key}: {x[key]}", markup=False)
    console.print(f"published: {local_time(x['published_at'], r.tz)} by {x['published_by']}", markup=False)
    for key in ("sha256", "html_sha256", "pdf_sha256"):
        console.print(f"{key}: {x[key]}", markup=False)
