"""`runs create | approve | cancel | list | messages | show`: a rule's audience frozen, reviewed, sent."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.table import Table

from ..identity.permissions import Permission, approval_gate
from ..output import console, local_time
from ..status import DeliveryStatus
from .common import (
    UNMASK_HELP,
    act,
    acting_flags,
    command,
    find_rule,
    group,
    iso_date,
    open_app,
    refusals_audited,
    today,
    unmasking,
)
from .render import LocalPayload, Payload, show, table

if TYPE_CHECKING:
    from .common import SubParsers


def register(sub: SubParsers) -> None:
    runs = group(sub, "runs", "create, approve, cancel and inspect runs")
    s = command(runs, "create", cmd_create, "freeze a rule's audience into a run awaiting approval")
    s.add_argument("rule")
    s.add_argument("--on", type=iso_date)
    acting_flags(s)
    s = command(runs, "approve", cmd_approve, "approve one review level")
    s.add_argument("run", type=int)
    acting_flags(s)
    s = command(runs, "cancel", cmd_cancel, "cancel a run; pending deliveries are skipped")
    s.add_argument("run", type=int)
    acting_flags(s)
    command(runs, "list", cmd_list, "all runs")
    s = command(
        runs,
        "messages",
        cmd_messages,
        "the stored messages of a run, exactly as they will be sent (masked unless --unmask)",
    )
    s.add_argument("run", type=int)
    s.add_argument("--sample", type=int, metavar="N", help="show the first N messages only")
    s.add_argument("--resident", metavar="ID", help="only this resident's messages")
    s.add_argument("--unmask", action="store_true", help=UNMASK_HELP)
    s.add_argument("--reason", metavar="TEXT", help="with --unmask: why (recorded in the audit log)")
    acting_flags(s, "with --unmask: assert the acting account's name")
    s = command(runs, "show", cmd_show, "one run with delivery counts by status")
    s.add_argument("run", type=int)
    s = command(runs, "deliveries", cmd_deliveries, "each recipient's delivery status and reason (masked)")
    s.add_argument("run", type=int)
    s.add_argument(
        "--status", choices=[x.value for x in DeliveryStatus], help="only deliveries in this status"
    )
    s.add_argument("--offset", type=int, default=0, metavar="N", help="skip the first N")
    s.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (500 at most)")
    s = command(
        runs, "diff", cmd_diff, "what the run's rule and templates change since its last approved run"
    )
    s.add_argument("run", type=int)
    s = command(runs, "retry", cmd_retry, "send the run's failed deliveries again (those without a fallback)")
    s.add_argument("run", type=int)
    acting_flags(s)


def cmd_create(args: argparse.Namespace) -> int:
    from ..runs import create_run

    app = open_app(args)
    rule = find_rule(app, args.rule)
    who = act(app, args, Permission.RUNS_CREATE, "create runs")
    created = create_run(app, rule, args.on or today(app), who.name)
    show(Payload(created.as_json() | {"rule": rule.id}), _created, args.json)
    return 0


def _created(r: Payload) -> None:
    out = r.data
    t = table(
        "run", "rule", "status", "audience", "review", "skipped", "version", title=f"run {out['run']} created"
    )
    t.add_row(
        *map(str, (out["run"], out["rule"], out["status"], out["audience"], out["review"], out["skipped"])),
        out["version"][:12],
    )
    console.print(t)
    if (changes := out.get("changes")) is not None:
        from ..runs.changes import describe

        console.print(describe(changes), markup=False)
    if out.get("review_note"):
        console.print(out["review_note"], markup=False)
    console.print(
        f"next: notifier runs show {out['run']}; notifier runs approve {out['run']} --by REVIEWER",
        markup=False,
    )


def cmd_approve(args: argparse.Namespace) -> int:
    from ..runs import approve_run

    app = open_app(args)
    who = act(app, args, Permission.RUNS_APPROVE, "approve runs")
    gate = approval_gate(who.account, Permission.RUNS_APPROVE, "approve runs")
    out = refusals_audited(
        app, "approve runs", lambda: approve_run(app, args.run, who.name, may_approve=gate)
    )
    show(Payload(out), _approved, args.json)
    return 0


def _approved(r: Payload) -> None:
    out = r.data
    console.print(
        f"run {out['run']}: {out['status']}, {len(out['approvals'])} of {out['levels']} levels approved",
        markup=False,
    )
    t = table("level", "level name", "by")
    for a in out["approvals"]:
        t.add_row(str(a["level"]), a["level_name"], a["by"])
    console.print(t)


def cmd_cancel(args: argparse.Namespace) -> int:
    from ..runs import cancel_run

    app = open_app(args)
    who = act(app, args, Permission.RUNS_CANCEL, "cancel runs")
    show(Payload(cancel_run(app, args.run, who.name)), _cancelled, args.json)
    return 0


def _cancelled(r: Payload) -> None:
    console.print(
        f"run {r.data['run']}: {r.data['status']}; {r.data['skipped']} pending deliveries skipped",
        markup=False,
    )


def cmd_list(args: argparse.Namespace) -> int:
    from ..runs import list_runs

    app = open_app(args)
    show(LocalPayload({"runs": list_runs(app)}, app.config.timezone), _listed, args.json)
    return 0


def _listed(r: LocalPayload) -> None:
    t = table("run", "rule", "status", "created", "created_by", "audience", title="runs")
    for x in r.data["runs"]:
        t.add_row(
            str(x["run"]),
            x["rule"],
            x["status"],
            local_time(x["created_at"], r.tz),
            x["created_by"],
            str(x["audience"]),
        )
    console.print(t)


def cmd_show(args: argparse.Namespace) -> int:
    from ..runs import show_run

    app = open_app(args)
    show(LocalPayload(show_run(app, args.run), app.config.timezone), _shown, args.json)
    return 0


def _shown(r: LocalPayload) -> None:
    out, tz = r.data, r.tz
    t = Table(title=f"run {out['run']}: {out['rule']} ({out['status']})", show_header=False)
    t.add_column("", style="bold")
    t.add_column("")
    approvals = ", ".join(f"{a['level_name']} {a['by']} {local_time(a['at'], tz)}" for a in out["approvals"])
    changed = out["changed_since_created"]
    for key, value in (
        ("rule version", out["version"][:12]),
        ("evaluated on", out["on"]),
        ("created", f"{local_time(out['created_at'], tz)} by {out['created_by']}"),
        ("audience", f"{out['audience']} (review {out['review']})"),
        (
            "changed since",
            f"{changed} resident(s) changed in the register after creation"
            + (
                " (the run sends what was approved; cancel and re-create to use the new data)"
                if changed
                else ""
            ),
        ),
        (
            "approvals",
            f"{len(out['approvals'])} of {len(out['levels'])}" + (f": {approvals}" if approvals else ""),
        ),
    ):
        t.add_row(key, value)
    console.print(t)
    _delivery_counts(out["counts"], out["by_channel"])


def _delivery_counts(totals: dict[str, int], by_channel: dict[str, dict[str, int]]) -> None:
    """Deliveries by channel (rows) and status (columns), with the totals."""
    statuses = list(totals)
    counts = table("channel", title="deliveries")
    for s in statuses:
        counts.add_column(s, justify="right")
    for channel, by in sorted(by_channel.items()):
        counts.add_row(channel, *(str(by.get(s, 0)) for s in statuses))
    counts.add_row("total", *(str(totals[s]) for s in statuses))
    console.print(counts)


def cmd_messages(args: argparse.Namespace) -> int:
    from ..runs import run_messages_page

    app = open_app(args)
    by, reason = unmasking(app, args, "see messages unmasked") if args.unmask else (args.by, None)
    out = run_messages_page(
        app, args.run, sample=args.sample, resident=args.resident, unmask=args.unmask, by=by, reason=reason
    )
    show(Payload(out), _messages, args.json)
    return 0


def _messages(r: Payload) -> None:
    out = r.data
    for m in out["messages"]:
        seg = f", {m['segments']} segment(s)" if m["segments"] else ""
        console.print(
            f"[bold]{m['resident']}[/] {m['channel']} -> {m['recipient']} ({m['role']}"
            f"{', ' + m['status'] if m['status'] else ''}{seg}) sha256 {m['sha256'][:12]}",
            highlight=False,
        )
        if m["subject"]:
            console.print(f"Subject: {m['subject']}", markup=False, highlight=False)
        console.print(m["body"], markup=False, highlight=False)
        console.print()
    console.print(
        f"{out['shown']} of {out['total']} message(s) of run {out['run']}, "
        f"{'masked' if out['masked'] else 'UNMASKED (audited)'}",
        highlight=False,
    )


def cmd_deliveries(args: argparse.Namespace) -> int:
    from ..runs import run_deliveries

    app = open_app(args)
    out = run_deliveries(app, args.run, status=args.status, offset=args.offset, limit=args.limit)
    show(LocalPayload(out, app.config.timezone), _deliveries, args.json)
    return 0


def _deliveries(r: LocalPayload) -> None:
    out = r.data
    t = table(
        "resident",
        "name",
        "channel",
        "recipient",
        "status",
        "reason",
        "updated",
        title=f"run {out['run']}: {len(out['deliveries'])} of {out['total']} from {out['offset'] + 1}",
    )
    for x in out["deliveries"]:
        t.add_row(
            x["resident"],
            x["name"],
            x["channel"],
            x["recipient"],
            x["status"],
            x["reason"] or "",
            local_time(x["updated_at"], r.tz),
        )
    console.print(t)


def cmd_diff(args: argparse.Namespace) -> int:
    from ..runs import rule_diff

    app = open_app(args)
    show(Payload(rule_diff(app, args.run)), _diff, args.json)
    return 0


def _diff(r: Payload) -> None:
    out = r.data
    if out["against"] is None:
        console.print(
            f"run {out['run']}: no earlier approved run of this rule; review it in full", markup=False
        )
    elif out["same"]:
        console.print(
            f"run {out['run']}: rule and templates as in approved run {out['against']}", markup=False
        )
    else:
        console.print("\n".join(out["diff"]), markup=False, highlight=False)


def cmd_retry(args: argparse.Namespace) -> int:
    from ..delivery.retry import retry_failed

    app = open_app(args)
    who = act(app, args, Permission.RUNS_RETRY, "send failed deliveries again")
    out = retry_failed(app, args.run, who.name)
    show(Payload(out), _retried, args.json)
    return 0


def _retried(r: Payload) -> None:
    out = r.data
    console.print(
        f"run {out['run']}: {out['retried']} failed deliveries to be sent again ({out['run_status']}); "
        "they go out with the next `notifier send` or `serve`",
        markup=False,
    )
