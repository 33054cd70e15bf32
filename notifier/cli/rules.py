"""`rules check | preview | explain | review | approve`: rule files before anything is sent."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..identity.permissions import Permission, approval_gate
from ..output import console
from .common import (
    act,
    acting_flags,
    command,
    find_rule,
    group,
    iso_date,
    open_app,
    refusals_audited,
    today,
)
from .render import Payload, print_problems, show, table

if TYPE_CHECKING:
    from ..app import App
    from ..errors import Problem
    from ..preview import Explanation, Preview, PreviewSummary, Sample
    from ..rules.checking import CheckReport
    from ..rules.model import Rule
    from ..rules.reviewqueue import ReviewQueue
    from ..scheduling.approval import ApprovalState
    from .common import SubParsers


def register(sub: SubParsers) -> None:
    rules = group(sub, "rules", "check, preview, explain and approve rules; the review queue")
    s = command(rules, "check", cmd_check, "check rule files, fields.yaml, templates and embedded tests")
    s.add_argument("paths", nargs="*", type=Path)
    s = command(
        rules,
        "preview",
        cmd_preview,
        "audience counts, channels, SMS cost and sample messages; "
        "with several rules or --all, one summary table",
    )
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("rule", nargs="*", default=[], metavar="RULE")
    which.add_argument(
        "--all", action="store_true", help="every rule in the rules folder (one scan of the register)"
    )
    s.add_argument("--on", type=iso_date, help="date the rule is evaluated for (default: today)")
    s.add_argument("--sample", type=int, default=3, metavar="N", help="sample messages shown (one rule only)")
    s.add_argument(
        "--letter-proof",
        metavar="RESIDENT_ID",
        help="write this resident's letter as a PDF proof (样张, no real verification code); needs -o",
    )
    s.add_argument("-o", "--output", type=Path, metavar="PDF", help="where --letter-proof writes the PDF")
    acting_flags(s)  # a letter proof names the resident in full: made by an account, audited
    s = command(rules, "explain", cmd_explain, "why a resident does or does not match")
    s.add_argument("rule")
    s.add_argument("resident_id")
    s.add_argument("--on", type=iso_date)
    s = command(
        rules,
        "review",
        cmd_review,
        "residents the rule cannot decide (data missing), with the fields they lack; "
        "-o writes a fill-in sheet for village cadres",
    )
    s.add_argument("rule")
    s.add_argument("--on", type=iso_date, help="date the rule is evaluated for (default: today)")
    s.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="SHEET.xlsx",
        help="write the fill-in sheet; import it back with `notifier residents import SHEET.xlsx`",
    )
    s.add_argument(
        "--limit", type=int, metavar="N", help="list the first N residents only (counts cover all)"
    )
    s = command(
        rules,
        "approve",
        cmd_approve,
        "approve the rule's current version for scheduled sending (one review level)",
    )
    s.add_argument("rule")
    acting_flags(s)


def cmd_check(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..rules.checking import check_rules

    config = load_config(args.config)
    report = check_rules(
        args.paths or [config.rules_dir],
        config.fields_file,
        config.templates_dir,
        variable_limits(config),
        template_kinds(config),
    )
    show(report, _checked, args.json)
    return 0 if report.ok else 1


def variable_limits(config: Any) -> dict[str, int]:
    """The longest template variable each provider kind takes: the smallest configured
    `max_variable_length` over its `[providers.*]` tables (read as written, secrets untouched)."""
    out: dict[str, int] = {}
    for name, section in config.raw["providers"].items():
        limit = (section or {}).get("max_variable_length")
        if isinstance(limit, int) and not isinstance(limit, bool):
            kind = str((section or {}).get("kind", name))
            out[kind] = min(limit, out.get(kind, limit))
    return out


def template_kinds(config: Any) -> list[str]:
    """The kinds of the configured SMS providers that send registered templates only."""
    from ..channels.registry import kind_of
    from ..rules.smstemplates import KINDS
    from ..status import Channel

    sms = config.channels.get(Channel.SMS)
    kinds = [kind_of(config, name) for name in (sms.providers if sms else [])]
    return [k for k in dict.fromkeys(kinds) if k in KINDS]


def _checked(report: CheckReport) -> None:
    print_problems(report.errors)
    print_problems(report.warnings)
    console.print(
        f"{report.files} file(s), {len(report.rules)} rule(s) loaded; "
        f"tests: {report.passed} passed, {report.failed} failed; "
        + ("ok" if report.ok else f"{len(report.errors)} problem(s)")
    )


def cmd_preview(args: argparse.Namespace) -> int:
    """One rule in detail; several rules (or --all) as one summary table."""
    from ..preview import preview, preview_many

    if args.letter_proof is not None:
        return _letter_proof(args)
    app = open_app(args)
    if args.all or len(args.rule) > 1:
        rules, problems = _rules_named(app, args)
        summary = preview_many(app, rules, args.on or today(app), problems)
        show(summary, _previewed_many, args.json)
        return summary.exit_code
    rule = find_rule(app, args.rule[0])
    show(preview(app, rule, args.on or today(app), args.sample), _previewed, args.json)
    return 0


def _letter_proof(args: argparse.Namespace) -> int:
    """One resident's letter of one rule as a PDF proof (letterproof.py)."""
    from ..errors import InputError
    from ..letterproof import letter_proof

    if args.all or len(args.rule) != 1 or args.output is None:
        raise InputError("--letter-proof takes one RULE and -o PROOF.pdf")
    app = open_app(args)
    who = act(app, args, Permission.RULES_READ, "make letter proofs")  # the proof names the resident
    pdf = letter_proof(app, find_rule(app, args.rule[0]), args.letter_proof, args.on or today(app), who.name)
    args.output.write_bytes(pdf)
    console.print(f"letter proof of {args.letter_proof} written to {args.output} ({len(pdf)} bytes)")
    return 0


def _rules_named(app: App, args: argparse.Namespace) -> tuple[list[Rule], list[Problem]]:
    """The rules to preview; with --all a broken rule file is reported and the others are still
    previewed (exit 3), a rule named on the command line must load."""
    from ..rules.load import load_rules, rule_files

    if not args.all:
        return [find_rule(app, rule_id) for rule_id in dict.fromkeys(args.rule)], []
    loaded, problems = load_rules(rule_files(app.config.rules_dir), app.dictionary, app.config.templates_dir)
    return [loaded[k] for k in sorted(loaded)], problems


AUDIENCE_COLUMNS = ("match", "no_match", "review", "sms", "email", "letter", "no contact")


def _audience_cells(counts: dict[str, int], by_channel: dict[str, int]) -> list[str]:
    keys = (counts["match"], counts["no_match"], counts["review"])
    return [str(n) for n in (*keys, *(by_channel[c] for c in ("sms", "email", "letter", "none")))]


def _previewed(p: Preview) -> None:
    t = table(
        *AUDIENCE_COLUMNS,
        "SMS segments",
        "SMS cost",
        title=f"{p.rule} on {p.on} (version {p.version[:12]})",
        justify="right",
    )
    t.add_row(*_audience_cells(p.counts, p.by_channel), str(p.sms_segments), f"¥{p.sms_cost:.2f}")
    console.print(t)
    if p.notices != p.counts["match"] or p.notify != "resident":
        console.print(f"{p.counts['match']} residents matched, {p.notices} notices", markup=False)
    if p.amount is not None:
        console.print(f"amount total: {p.amount.total}元", markup=False)
        for village, total in p.amount.by_village.items():
            console.print(f"  {village}: {total}元", markup=False)
        if p.amount.undetermined:
            console.print(f"  {p.amount.undetermined} notice(s) without an amount", markup=False)
    if p.changes is not None:
        from ..runs.changes import describe

        console.print(describe(p.changes), markup=False)
    if p.review_conditions:
        console.print(
            "review (data missing): " + ", ".join(f"{c['label']} {c['missing']}" for c in p.review_conditions)
        )
    for s in p.samples:
        _sample(s)


def _sample(s: Sample) -> None:
    segments = f"  ({s.segments} segment(s))" if s.segments is not None else ""
    console.print(f"[bold]{s.channel}[/bold] → {s.resident}{segments}")
    if s.error is not None:
        console.print(f"  error: {s.error}", markup=False)
        return
    if s.subject:
        console.print(f"  subject: {s.subject}", markup=False)
    console.print("  " + s.body.strip().replace("\n", "\n  "), markup=False)


def _previewed_many(summary: PreviewSummary) -> None:
    t = table("rule", title=f"{len(summary.rules)} rules on {summary.on}")
    for col in AUDIENCE_COLUMNS:
        t.add_column(col, justify="right")
    for r in summary.rules:
        t.add_row(r.rule, *_audience_cells(r.counts, r.by_channel))
    console.print(t)
    print_problems(summary.errors)


def cmd_explain(args: argparse.Namespace) -> int:
    from ..preview import explain

    app = open_app(args)
    rule = find_rule(app, args.rule)
    show(explain(app, rule, args.resident_id, args.on or today(app)), _explained, args.json)
    return 0


CONDITION_MARKS = {"pass": "✓", "fail": "✗", "unknown": "?"}


def _explained(e: Explanation) -> None:
    console.print(f"{e.rule} / {e.resident} on {e.on}: [bold]{e.result}[/bold] — {e.summary}")
    for c in e.conditions:
        console.print(f"  {CONDITION_MARKS[c['result']]} {c['text']}", markup=False)
    if e.amount_steps:
        console.print("  金额计算：", markup=False)
        for line in e.amount_steps:
            console.print(f"    {line}", markup=False)


def cmd_review(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..rules.reviewqueue import review_queue
    from ..rules.reviewsheet import write_sheet

    app = open_app(args)
    rule = find_rule(app, args.rule)
    on = args.on or today(app)
    if args.output is not None:
        if args.output.suffix.lower() != ".xlsx":
            raise InputError(f"{args.output}: the fill-in sheet is an .xlsx workbook")
        written = write_sheet(app, rule, on, args.output)
        show(Payload(written.as_json() | {"file": str(args.output)}), _sheet_written, args.json)
        return 0
    show(review_queue(app, rule, on, args.limit), _reviewed, args.json)
    return 0


def _reviewed(q: ReviewQueue) -> None:
    from ..rules.reviewqueue import place

    if not q.total:
        console.print(f"{q.rule} on {q.on}: nobody waits in review", markup=False)
        return
    t = table("resident", "name", "village", "missing", title=f"{q.rule} on {q.on}: {q.total} in review")
    for w in q.shown:
        t.add_row(w.resident_id, w.name, place(w), "、".join(q.labels[f] for f in w.missing))
    console.print(t)
    if len(q.shown) < q.total:
        console.print(f"… {q.total - len(q.shown)} more (counts below cover all)", markup=False)
    v = table("village", "residents", title="by village")
    for where, n in q.by_village.items():
        v.add_row(where, str(n))
    console.print(v)
    console.print(
        "missing: " + ", ".join(f"{q.labels[f]} {n}" for f, n in q.by_field.items()) + "; "
        f"next: notifier rules review {q.rule} --on {q.on} -o sheet.xlsx",
        markup=False,
    )


def _sheet_written(r: Payload) -> None:
    out = r.data
    console.print(
        f"{out['file']}: {out['residents']} resident(s) to complete"
        + (f" ({'、'.join(out['columns'])})" if out["columns"] else "")
        + f"; once filled in: notifier residents import {out['file']}",
        markup=False,
    )


def cmd_approve(args: argparse.Namespace) -> int:
    from ..scheduling.approval import approve_rule

    app = open_app(args)
    who = act(app, args, Permission.RULES_APPROVE, "approve rules")
    gate = approval_gate(who.account, Permission.RULES_APPROVE, "approve rules")
    rule = find_rule(app, args.rule)
    state = refusals_audited(
        app, "approve rules", lambda: approve_rule(app, rule, who.name, may_approve=gate)
    )
    show(state, _approved, args.json)
    return 0


def _approved(state: ApprovalState) -> None:
    console.print(
        f"{state.rule} version {state.version[:12]}: {len(state.approvals)} of {len(state.levels)} "
        f"levels approved" + (" — scheduled firings will be sent" if state.approved else "")
    )
