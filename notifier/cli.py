"""The `notifier` command line (DESIGN §6). Exit: 0 ok, 1 error, 2 usage, 3 partial success."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from datetime import date
from pathlib import Path
from typing import Any

from rich.table import Table

from . import __version__
from .errors import InputError, NotifierError, Problem
from .output import console, emit_json, err_console, progress_bar

REPO = Path(__file__).resolve().parent.parent


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-03-02") from None


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    p = argparse.ArgumentParser(
        prog="notifier", description="Targeted notification of benefit and subsidy items."
    )
    p.add_argument(
        "--config", metavar="PATH", help="config file (default: $NOTIFIER_CONFIG or ./notifier.toml)"
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"notifier {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "init", parents=[common], help="create notifier.toml, rules/, templates/ and the database in DIR"
    )
    s.add_argument("dir", nargs="?", default=".", type=Path)

    res = sub.add_parser("residents", help="resident register").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    s = res.add_parser(
        "import", parents=[common], help="import a CSV (UTF-8/GBK) or XLSX register; re-import updates"
    )
    s.add_argument("file", type=Path)
    s.add_argument("--dry-run", action="store_true", help="validate and count, change nothing")
    s.add_argument("--by", default="import", help="who imports (recorded in the audit log)")
    s.add_argument("--sheet", help="XLSX: the sheet to import (default: the first sheet with a header row)")

    rec = sub.add_parser("records", help="related records such as grants").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    s = rec.add_parser(
        "import", parents=[common], help="import related records of KIND (declared in fields.yaml)"
    )
    s.add_argument("kind")
    s.add_argument("file", type=Path)
    s.add_argument("--dry-run", action="store_true")
    s.add_argument("--by", default="import")
    s.add_argument("--sheet", help="XLSX: the sheet to import (default: the first sheet with a header row)")

    rules = sub.add_parser("rules", help="check, preview and explain rules").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    s = rules.add_parser(
        "check", parents=[common], help="check rule files, fields.yaml, templates and embedded tests"
    )
    s.add_argument("paths", nargs="*", type=Path)
    s = rules.add_parser(
        "preview",
        parents=[common],
        help="audience counts, channels, SMS cost and sample messages; "
        "with several rules or --all, one summary table",
    )
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("rule", nargs="*", default=[], metavar="RULE")
    which.add_argument(
        "--all", action="store_true", help="every rule in the rules folder (one scan of the register)"
    )
    s.add_argument("--on", type=_date, help="date the rule is evaluated for (default: today)")
    s.add_argument("--sample", type=int, default=3, metavar="N", help="sample messages shown (one rule only)")
    s = rules.add_parser("explain", parents=[common], help="why a resident does or does not match")
    s.add_argument("rule")
    s.add_argument("resident_id")
    s.add_argument("--on", type=_date)
    s = rules.add_parser(
        "approve",
        parents=[common],
        help="approve the rule's current version for scheduled sending (one review level)",
    )
    s.add_argument("rule")
    s.add_argument("--by", required=True, metavar="USER")

    sched = sub.add_parser("schedule", help="scheduled notices").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    sched.add_parser(
        "list", parents=[common], help="each notice's next and last firing, approval state and version"
    )

    runs = sub.add_parser("runs", help="create, approve, cancel and inspect runs").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    s = runs.add_parser(
        "create", parents=[common], help="freeze a rule's audience into a run awaiting approval"
    )
    s.add_argument("rule")
    s.add_argument("--on", type=_date)
    s.add_argument("--by", required=True, metavar="USER")
    for name, text in (
        ("approve", "approve one review level"),
        ("cancel", "cancel a run; pending deliveries are skipped"),
    ):
        s = runs.add_parser(name, parents=[common], help=text)
        s.add_argument("run", type=int)
        s.add_argument("--by", required=True, metavar="USER")
    runs.add_parser("list", parents=[common], help="all runs")
    s = runs.add_parser(
        "messages",
        parents=[common],
        help="the stored messages of a run, exactly as they will be sent (masked unless --unmask)",
    )
    s.add_argument("run", type=int)
    s.add_argument("--sample", type=int, metavar="N", help="show the first N messages only")
    s.add_argument("--resident", metavar="ID", help="only this resident's messages")
    s.add_argument(
        "--unmask", action="store_true", help="personal data in full (needs [audit] unmask_allowed; audited)"
    )
    s.add_argument("--by", metavar="USER", help="who unmasks (required with --unmask)")
    s = runs.add_parser("show", parents=[common], help="one run with delivery counts by status")
    s.add_argument("run", type=int)

    s = sub.add_parser("send", parents=[common], help="dispatch due deliveries of approved runs")
    s.add_argument("--run", type=int)
    s.add_argument(
        "--until-idle",
        action="store_true",
        help="also wait for retries, and for interrupted or timed-out sends to be settled with the "
        "provider, until nothing is pending (exit 3 if some outcomes stay unknown)",
    )
    s.add_argument(
        "--resolve-unknown",
        type=int,
        metavar="RUN",
        help="instead of sending: settle the run's `unknown` deliveries as --as decides (audited)",
    )
    s.add_argument(
        "--as",
        dest="resolve_as",
        choices=["sent", "resend"],
        help="with --resolve-unknown: `sent` (it did go out) or `resend` (send the same row again)",
    )
    s.add_argument(
        "--by", metavar="USER", help="with --resolve-unknown: who decided (recorded in the audit log)"
    )

    s = sub.add_parser("serve", help="run the dispatcher loop and the Twilio webhooks, /healthz and /metrics")
    s.add_argument("--host", help="address to listen on (default: [serve] host)")
    s.add_argument("--port", type=int, help="port to listen on (default: [serve] port; 0 = any free port)")

    aud = sub.add_parser("audit", help="the audit log").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    s = aud.add_parser(
        "verify", parents=[common], help="recompute the hash chain; compare with the head and the checkpoints"
    )
    s.add_argument(
        "--from-checkpoint",
        action="store_true",
        help="start after the newest checkpoint instead of the first event",
    )
    aud.add_parser("checkpoint", parents=[common], help="append the chain head to the checkpoint file")
    s = aud.add_parser(
        "export", parents=[common], help="events as csv, jsonl or xlsx, masked, ending with the chain head"
    )
    s.add_argument("--run", type=int)
    s.add_argument("--resident", metavar="ID")
    s.add_argument(
        "--from", dest="date_from", type=_date, metavar="DATE", help="first day (configured timezone)"
    )
    s.add_argument("--to", dest="date_to", type=_date, metavar="DATE", help="last day, included")
    s.add_argument("--format", required=True, choices=("csv", "jsonl", "xlsx"))
    s.add_argument("-o", "--output", required=True, type=Path, metavar="FILE")
    s.add_argument(
        "--unmask", action="store_true", help="personal data in full (needs [audit] unmask_allowed; audited)"
    )
    s.add_argument("--by", metavar="USER", help="who exports (required with --unmask)")
    s = aud.add_parser(
        "coverage", parents=[common], help="every resident of a run with their outcome; totals = audience"
    )
    s.add_argument("run", type=int)
    s.add_argument("--format", choices=("csv", "xlsx"), help="write the per-resident list to -o FILE")
    s.add_argument("-o", "--output", type=Path, metavar="FILE")
    s = aud.add_parser("resident", parents=[common], help="every delivery to one resident across runs")
    s.add_argument("resident_id")

    s = sub.add_parser(
        "demo", parents=[common], help="the whole flow on generated sample data with local sinks"
    )
    s.add_argument("--dir", type=Path, default=Path("demo"), help="where the demo writes (default: ./demo)")
    s.add_argument("--residents", type=int, default=2000)
    return p


def _today(app: Any) -> date:
    from .clock import local_today

    return local_today(app.config.timezone)


def _open(args: argparse.Namespace) -> Any:
    from .app import App

    return App.open(args.config)


def _rule(app: Any, rule_id: str) -> Any:
    from .rules.load import find_rule

    return find_rule(rule_id, app.config.rules_dir, app.dictionary, app.config.templates_dir)


def _problems_table(title: str, problems: list[Problem], limit: int = 50) -> None:
    t = Table(title=title, show_lines=False)
    for col in ("row", "column", "message"):
        t.add_column(col)
    for p in problems[:limit]:
        t.add_row(str(p.row or ""), str(p.column or ""), p.message)
    console.print(t)
    if len(problems) > limit:
        console.print(f"... and {len(problems) - limit} more (use --json for all)")


def cmd_init(args: argparse.Namespace) -> int:
    from .config import load_config, masked_url
    from .storage.db import open_database

    target: Path = args.dir
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
    out = {"config": str(cfg.resolve()), "database": masked_url(config.database_url)}
    if args.json:
        emit_json(out)
    else:
        console.print(
            f"wrote {out['config']}\ndatabase {out['database']}\nnext: notifier residents import FILE"
        )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from .residents.importer import import_records, import_residents

    app = _open(args)
    with progress_bar(f"importing {args.file.name}", None, not args.json) as (advance, set_total):
        if args.command == "residents":
            report = import_residents(
                app,
                args.file,
                actor=args.by,
                dry_run=args.dry_run,
                sheet=args.sheet,
                progress=advance,
                on_total=set_total,
            )
        else:
            report = import_records(
                app,
                args.kind,
                args.file,
                actor=args.by,
                dry_run=args.dry_run,
                sheet=args.sheet,
                progress=advance,
                on_total=set_total,
            )
    if args.json:
        emit_json(report.as_json())
    else:
        verb = "would import" if args.dry_run else "imported"
        console.print(
            f"{args.file}: {verb} {report.imported}, updated {report.updated}, unchanged {report.unchanged}"
            f", rejected {report.rejected}",
            markup=False,
        )
        console.print(
            f"header on row {report.header_row}"
            + (f" of sheet {report.sheet}" if report.sheet else "")
            + (f", encoding {report.encoding}" if report.encoding else ""),
            markup=False,
        )
        if report.errors:
            _problems_table("rejected rows", report.errors)
        if report.warnings:
            _problems_table("warnings", report.warnings, limit=20)
    return report.exit_code


def cmd_rules(args: argparse.Namespace) -> int:
    if args.action == "approve":
        from .scheduling.approval import approve_rule

        app = _open(args)
        state = approve_rule(app, _rule(app, args.rule), args.by)
        if args.json:
            emit_json(state.as_json())
        else:
            console.print(
                f"{args.rule} version {state.version[:12]}: {len(state.approvals)} of {len(state.levels)} "
                f"levels approved" + (" — scheduled firings will be sent" if state.approved else "")
            )
        return 0
    if args.action == "check":
        from .config import load_config
        from .rules.checking import check_rules

        config = load_config(args.config)
        report = check_rules(args.paths or [config.rules_dir], config.fields_file, config.templates_dir)
        if args.json:
            emit_json(report.as_json())
        else:
            for p in report.errors:
                err_console.print(str(p), markup=False)
            console.print(
                f"{report.files} file(s), {len(report.rules)} rule(s) loaded; "
                f"tests: {report.passed} passed, {report.failed} failed; "
                + ("ok" if report.ok else f"{len(report.errors)} problem(s)")
            )
        return 0 if report.ok else 1
    from .preview import explain, preview

    app = _open(args)
    if args.action == "preview" and (args.all or len(args.rule) > 1):
        return _preview_many(app, args)
    rule = _rule(app, args.rule[0] if args.action == "preview" else args.rule)
    on = args.on or _today(app)
    if args.action == "preview":
        out = preview(app, rule, on, args.sample)
        if args.json:
            emit_json(out)
            return 0
        t = Table(title=f"{rule.id} on {on} (version {rule.version[:12]})")
        for col in (
            "match",
            "no_match",
            "review",
            "sms",
            "email",
            "letter",
            "no contact",
            "SMS segments",
            "SMS cost",
        ):
            t.add_column(col, justify="right")
        bc = out["by_channel"]
        t.add_row(
            *map(
                str,
                (
                    out["match"],
                    out["no_match"],
                    out["review"],
                    bc["sms"],
                    bc["email"],
                    bc["letter"],
                    bc["none"],
                    out["sms_segments"],
                    f"¥{out['sms_cost']:.2f}",
                ),
            )
        )
        console.print(t)
        if out["review_conditions"]:
            console.print(
                "review (data missing): "
                + ", ".join(f"{c['label']} {c['missing']}" for c in out["review_conditions"])
            )
        for s in out["samples"]:
            console.print(
                f"[bold]{s['channel']}[/bold] → {s['resident']}"
                + (f"  ({s['segments']} segment(s))" if "segments" in s else "")
            )
            if s.get("subject"):
                console.print(f"  subject: {s['subject']}", markup=False)
            console.print("  " + s["body"].strip().replace("\n", "\n  "), markup=False)
        return 0
    out = explain(app, rule, args.resident_id, on)
    if args.json:
        emit_json(out)
        return 0
    console.print(f"{rule.id} / {args.resident_id} on {on}: [bold]{out['result']}[/bold] — {out['summary']}")
    for c in out["conditions"]:
        mark = {"pass": "✓", "fail": "✗", "unknown": "?"}[c["result"]]
        console.print(f"  {mark} {c['text']}", markup=False)
    return 0


def _preview_many(app: Any, args: argparse.Namespace) -> int:
    """Counts and channels of several rules (or --all) from one scan; with --all a broken rule
    file is reported and the others are still previewed (exit 3)."""
    from .preview import preview_many
    from .rules.load import load_rules, rule_files

    problems: list[Problem] = []
    if args.all:
        loaded, problems = load_rules(
            rule_files(app.config.rules_dir), app.dictionary, app.config.templates_dir
        )
        rules = [loaded[k] for k in sorted(loaded)]
    else:
        rules = [_rule(app, rule_id) for rule_id in dict.fromkeys(args.rule)]
    on = args.on or _today(app)
    out = preview_many(app, rules, on) | {"errors": [p.as_json() for p in problems]}
    if args.json:
        emit_json(out)
    else:
        t = Table(title=f"{len(rules)} rules on {on}")
        t.add_column("rule")
        for col in ("match", "no_match", "review", "sms", "email", "letter", "no contact"):
            t.add_column(col, justify="right")
        for r in out["rules"]:
            c, bc = r["counts"], r["by_channel"]
            t.add_row(
                r["rule"],
                *map(
                    str,
                    (
                        c["match"],
                        c["no_match"],
                        c["review"],
                        bc["sms"],
                        bc["email"],
                        bc["letter"],
                        bc["none"],
                    ),
                ),
            )
        console.print(t)
        for p in problems:
            err_console.print(str(p), markup=False)
    return 3 if problems else 0


def cmd_runs(args: argparse.Namespace) -> int:
    from . import runs

    app = _open(args)
    if args.action == "messages":
        return _runs_messages(app, args)
    if args.action == "create":
        rule = _rule(app, args.rule)
        out = runs.create_run(app, rule, args.on or _today(app), args.by).as_json() | {"rule": rule.id}
    elif args.action == "approve":
        out = runs.approve_run(app, args.run, args.by)
    elif args.action == "cancel":
        out = runs.cancel_run(app, args.run, args.by)
    elif args.action == "list":
        out = {"runs": runs.list_runs(app)}
    else:
        out = runs.show_run(app, args.run)
    if args.json:
        emit_json(out)
    else:
        _RUN_TABLES[args.action](out, app.config.timezone)
    return 0


def _runs_messages(app: Any, args: argparse.Namespace) -> int:
    from .runs import run_messages_page

    out = run_messages_page(
        app, args.run, sample=args.sample, resident=args.resident, unmask=args.unmask, by=args.by
    )
    if args.json:
        emit_json(out)
        return 0
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
    return 0


def _run_created(out: dict[str, Any], tz: Any) -> None:
    t = Table(title=f"run {out['run']} created")
    for col in ("run", "rule", "status", "audience", "review", "skipped", "version"):
        t.add_column(col)
    t.add_row(
        str(out["run"]),
        out["rule"],
        out["status"],
        str(out["audience"]),
        str(out["review"]),
        str(out["skipped"]),
        out["version"][:12],
    )
    console.print(t)
    console.print(
        f"next: notifier runs show {out['run']}; notifier runs approve {out['run']} --by REVIEWER",
        markup=False,
    )


def _run_approved(out: dict[str, Any], tz: Any) -> None:
    console.print(
        f"run {out['run']}: {out['status']}, {len(out['approvals'])} of {out['levels']} levels approved",
        markup=False,
    )
    t = Table()
    for col in ("level", "level name", "by"):
        t.add_column(col)
    for a in out["approvals"]:
        t.add_row(str(a["level"]), a["level_name"], a["by"])
    console.print(t)


def _run_cancelled(out: dict[str, Any], tz: Any) -> None:
    console.print(
        f"run {out['run']}: {out['status']}; {out['skipped']} pending deliveries skipped", markup=False
    )


def _runs_list(out: dict[str, Any], tz: Any) -> None:
    from .output import local_time

    t = Table(title="runs")
    for col in ("run", "rule", "status", "created", "created_by", "audience"):
        t.add_column(col)
    for r in out["runs"]:
        t.add_row(
            str(r["run"]),
            r["rule"],
            r["status"],
            local_time(r["created_at"], tz),
            r["created_by"],
            str(r["audience"]),
        )
    console.print(t)


def _run_shown(out: dict[str, Any], tz: Any) -> None:
    from .output import local_time

    t = Table(title=f"run {out['run']}: {out['rule']} ({out['status']})", show_header=False)
    t.add_column("", style="bold")
    t.add_column("")
    approvals = ", ".join(f"{a['level_name']} {a['by']} {local_time(a['at'], tz)}" for a in out["approvals"])
    for key, value in (
        ("rule version", out["version"][:12]),
        ("evaluated on", out["on"]),
        ("created", f"{local_time(out['created_at'], tz)} by {out['created_by']}"),
        ("audience", f"{out['audience']} (review {out['review']})"),
        (
            "changed since",
            f"{out['changed_since_created']} resident(s) changed in the register after creation"
            + (
                " (the run sends what was approved; cancel and re-create to use the new data)"
                if out["changed_since_created"]
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
    counts = Table(title="deliveries")
    statuses = list(out["counts"])
    counts.add_column("channel")
    for s in statuses:
        counts.add_column(s, justify="right")
    for channel, by in sorted(out["by_channel"].items()):
        counts.add_row(channel, *(str(by.get(s, 0)) for s in statuses))
    counts.add_row("total", *(str(out["counts"][s]) for s in statuses))
    console.print(counts)


_RUN_TABLES = {
    "create": _run_created,
    "approve": _run_approved,
    "cancel": _run_cancelled,
    "list": _runs_list,
    "show": _run_shown,
}


def cmd_send(args: argparse.Namespace) -> int:
    from .channels.registry import providers_for
    from .delivery.dispatch import Dispatcher
    from .status import DeliveryStatus

    if args.resolve_unknown is not None or args.resolve_as or args.by:
        return _resolve_unknown(args)
    app = _open(args)
    dispatcher = Dispatcher(app, providers_for(app.config))
    total = dispatcher.count([DeliveryStatus.PENDING, DeliveryStatus.SENDING], args.run)
    with progress_bar("sending", total, not args.json) as (advance, _):
        report = asyncio.run(dispatcher.run(args.run, until_idle=args.until_idle, progress=advance))
    reasons = _idle_reasons(app, args.run, bool(report.sent or report.failed or report.skipped))
    if args.json:
        emit_json(report.as_json() | {"idle_reasons": reasons})
    else:
        console.print(
            f"sent {report.sent}, failed {report.failed}, skipped {report.skipped}, "
            f"retrying {report.retried}, reconciled {report.reconciled}, remaining {report.remaining}"
        )
        for r in reasons:
            err_console.print(f"{'waiting' if report.sent else 'nothing sent'}: {r['message']}", markup=False)
    if report.unknown:
        err_console.print(
            f"[yellow]{report.unknown} deliveries are `unknown`: the provider could not be asked whether "
            "it took them; they are not resent blindly (see `runs show`; the next `send` asks again; "
            "once checked, settle them with `send --resolve-unknown RUN --as sent|resend --by USER`)[/]"
        )
        return 3
    return 0


def _resolve_unknown(args: argparse.Namespace) -> int:
    from .delivery.resolve import Decision, resolve_unknown

    if args.resolve_unknown is None or not args.resolve_as or not args.by:
        err_console.print("usage error: --resolve-unknown RUN goes with --as sent|resend and --by USER")
        return 2
    out = resolve_unknown(_open(args), args.resolve_unknown, Decision(args.resolve_as), args.by)
    if args.json:
        emit_json(out)
    else:
        console.print(
            f"run {out['run']}: {out['resolved']} unknown deliveries settled as {out['as']}; "
            f"run is {out['run_status']}"
            + ("; `notifier send` sends them again" if out["as"] == "resend" else "")
        )
    return 0


def _idle_reasons(app: Any, run_id: int | None, worked: bool) -> list[dict[str, Any]]:
    """Why deliveries still wait after `send` (not approved, quiet hours, outside the window, ...);
    "nothing pending" is news only when this send did nothing either."""
    from .clock import utcnow
    from .delivery.why import idle_reasons

    reasons = idle_reasons(app, utcnow(), run_id)
    return [r for r in reasons if r["reason"] != "no_pending"] if worked else reasons


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from .serve import ServeSettings, serve

    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "Context impl ..." on every start is noise
    app = _open(args)
    try:
        return asyncio.run(serve(app, ServeSettings.from_config(app, args.host, args.port)))
    finally:
        app.close()


def cmd_audit(args: argparse.Namespace) -> int:
    from .audit import checkpoints, coverage, export

    app = _open(args)
    if args.action == "verify":
        r, path, cps = checkpoints.verify_log(app, from_checkpoint=args.from_checkpoint)
        out = r.as_json() | {"checkpoints": cps | {"matched": r.checkpoints_matched}}
        if args.json:
            emit_json(out)
        else:
            n = cps["count"]
            if r.ok:
                verdict = "intact"
            elif r.first_bad is None:
                verdict = f"BROKEN ({r.kind}): {r.reason}"
            else:
                verdict = f"BROKEN at event {r.first_bad} ({r.kind}): {r.reason}"
            console.print(
                f"audit log: {r.events} events, {r.checkpoints_matched} of {n} checkpoint(s) matched "
                f"({cps['signed']} signed), " + verdict,
                markup=False,
            )
            for p in r.problems[1 if r.kind == checkpoints.SIGNATURE_PROBLEM else 0 :]:
                console.print(f"  {p['file']}:{p['line']}: {p['message']}", markup=False)
        return 0 if r.ok else 1
    if args.action == "checkpoint":
        out = checkpoints.take_checkpoint(app)
        if args.json:
            emit_json(out)
        else:
            console.print(
                f"checkpoint: event {out['seq']} hash {out['hash']} at {out['at']} -> {out['file']}",
                markup=False,
            )
        return 0
    if args.action == "export":
        f = export.ExportFilter(args.run, args.resident, args.date_from, args.date_to)
        out = export.export_events(app, args.output, args.format, f, unmask=args.unmask, by=args.by)
        if args.json:
            emit_json(out)
        else:
            console.print(
                f"{out['events']} event(s) {'unmasked' if args.unmask else 'masked'} -> {out['file']}; "
                f"chain head {out['head']['seq']} {out['head']['hash']}",
                markup=False,
            )
        return 0
    if args.action == "resident":
        out = coverage.resident_history(app, args.resident_id)
        if args.json:
            emit_json(out)
            return 0
        t = Table(
            title=f"resident {args.resident_id}" + ("" if out["in_register"] else " (not in the register)")
        )
        for col in ("run", "rule", "channel", "status", "recipient", "at", "reason"):
            t.add_column(col)
        for d in out["deliveries"]:
            t.add_row(
                str(d["run"]),
                d["rule"],
                d["channel"],
                d["status"],
                d["recipient"] or "",
                (d["at"] or "")[:19],
                d["reason"] or "",
            )
        console.print(t)
        return 0
    return _audit_coverage(app, args)


def _audit_coverage(app: Any, args: argparse.Namespace) -> int:
    import json

    from .audit.coverage import RESIDENT_COLUMNS, coverage
    from .audit.sheets import table_writer

    if bool(args.format) != bool(args.output):
        raise InputError("--format and -o FILE go together")
    cov, residents = coverage(app, args.run)
    if args.output:
        with table_writer(args.output, args.format, RESIDENT_COLUMNS, sheet=f"run {args.run}") as write:
            for r in residents:
                write([r[c] for c in RESIDENT_COLUMNS])
        out = cov.as_json() | {"file": str(args.output)}
        if args.json:
            emit_json(out)
    elif args.json:  # one object, the resident list streamed into it (constant memory for any run size)
        sys.stdout.write('{"residents":[')
        for i, r in enumerate(residents):
            sys.stdout.write(("," if i else "") + json.dumps(r, ensure_ascii=False))
        sys.stdout.write("]," + json.dumps(cov.as_json(), ensure_ascii=False)[1:] + "\n")
    else:
        for _ in residents:
            pass
    if not args.json:
        t = Table(
            title=f"run {cov.run} ({cov.rule}, {cov.status}): audience {cov.audience}, review {cov.review}"
        )
        for col in (*cov.totals, "total"):
            t.add_column(col, justify="right")
        t.add_row(*map(str, cov.totals.values()), str(cov.counted))
        console.print(t)
        skipped = {k: v for k, v in cov.skipped_by_reason.items() if v}
        if skipped:
            console.print("skipped: " + ", ".join(f"{k} {v}" for k, v in skipped.items()))
        if args.output:
            console.print(f"per-resident list -> {args.output}", markup=False)
        if not cov.balanced:
            err_console.print(f"error: {cov.counted} residents accounted for, audience is {cov.audience}")
    return 0 if cov.balanced else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.dir, args.residents, as_json=args.json)


def cmd_schedule(args: argparse.Namespace) -> int:
    """Each scheduled notice with its state; a broken rule file is reported and the others are
    listed (exit 3)."""
    from datetime import timedelta

    from .clock import as_utc, utcnow
    from .output import local_time
    from .rules.load import load_rules, rule_files
    from .scheduling.approval import approval_state
    from .scheduling.firing import last_firings
    from .scheduling.scheduler import next_fire, schedule_state

    app = _open(args)
    tz = app.config.timezone
    grace = timedelta(seconds=app.config.schedule.misfire_grace_seconds)
    rules, problems = load_rules(rule_files(app.config.rules_dir), app.dictionary, app.config.templates_dir)
    last = last_firings(app)
    now = utcnow()
    out = []
    with app.reader.connect() as conn:
        for rid, rule in sorted(rules.items()):
            if not rule.schedule:
                continue
            state = approval_state(conn, rule, app.config.approval_levels)
            nxt = next_fire(rule, tz, now)
            f = last.get(rid)
            out.append(
                {
                    "rule": rid,
                    "schedule": {k: str(v) for k, v in rule.schedule.items()},
                    "next": nxt.isoformat() if nxt else None,
                    "state": schedule_state(rule, tz, now, grace, f),
                    "version": rule.version,
                    "approved": state.approved,
                    "approvals": len(state.approvals),
                    "levels": len(state.levels),
                    "last": None
                    if f is None
                    else {
                        "scheduled_at": as_utc(f.scheduled_at).astimezone(tz).isoformat(),
                        "status": f.status,
                        "run": f.run_id,
                        "reason": f.reason,
                    },
                }
            )
    code = 3 if problems else 0
    if args.json:
        emit_json({"notices": out, "errors": [p.as_json() for p in problems]})
        return code
    t = Table(title=f"scheduled notices ({tz.key})")
    for col in ("rule", "schedule", "state", "next", "approved", "version", "last firing"):
        t.add_column(col)
    for n in out:
        rule = rules[n["rule"]]
        once = rule.schedule.get("once")
        when = (
            f"once {local_time(once if once.tzinfo else once.replace(tzinfo=tz), tz)}"
            if once
            else f"cron {rule.schedule['cron']}"
        )
        last_text = f"{local_time(n['last']['scheduled_at'], tz)} {n['last']['status']}" if n["last"] else ""
        t.add_row(
            n["rule"],
            when,
            n["state"],
            local_time(n["next"], tz),
            f"{n['approvals']}/{n['levels']}",
            n["version"][:12],
            last_text,
        )
    console.print(t)
    for p in problems:
        err_console.print(str(p), markup=False)
    return code


COMMANDS = {
    "schedule": cmd_schedule,
    "init": cmd_init,
    "residents": cmd_import,
    "records": cmd_import,
    "rules": cmd_rules,
    "runs": cmd_runs,
    "send": cmd_send,
    "serve": cmd_serve,
    "audit": cmd_audit,
    "demo": cmd_demo,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except NotifierError as exc:
        if args.debug:
            raise
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
    except Exception as exc:
        # A database refusal (constraint, lock, lost connection): its reason only, never the SQL's
        # parameters (residents' names and numbers; engines hide them too) or a traceback.
        import sqlalchemy as sa

        if args.debug or not isinstance(exc, sa.exc.DBAPIError):
            raise
        from .storage.db import db_error_text

        err_console.print(
            f"error: the database refused the operation ({type(exc.orig).__name__}): "
            f"{db_error_text(exc)} (--debug shows the statement)",
            markup=False,
        )
        return 1
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
