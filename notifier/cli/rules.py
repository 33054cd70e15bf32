"""`rules check | preview | explain | approve`: rule files before anything is sent."""

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
from .render import print_problems, show, table

if TYPE_CHECKING:
    from ..app import App
    from ..errors import Problem
    from ..preview import Explanation, Preview, PreviewSummary, Sample
    from ..rules.checking import CheckReport
    from ..rules.model import Rule
    from ..scheduling.approval import ApprovalState
    from .common import SubParsers


def register(sub: SubParsers) -> None:
    rules = group(sub, "rules", "check, preview and explain rules")
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
    s = command(rules, "explain", cmd_explain, "why a resident does or does not match")
    s.add_argument("rule")
    s.add_argument("resident_id")
    s.add_argument("--on", type=iso_date)
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
    console.print(
        f"{report.files} file(s), {len(report.rules)} rule(s) loaded; "
        f"tests: {report.passed} passed, {report.failed} failed; "
        + ("ok" if report.ok else f"{len(report.errors)} problem(s)")
    )


def cmd_preview(args: argparse.Namespace) -> int:
    """One rule in detail; several rules (or --all) as one summary table."""
    from ..preview import preview, preview_many

    app = open_app(args)
    if args.all or len(args.rule) > 1:
        rules, problems = _rules_named(app, args)
        summary = preview_many(app, rules, args.on or today(app), problems)
        show(summary, _previewed_many, args.json)
        return summary.exit_code
    rule = find_rule(app, args.rule[0])
    show(preview(app, rule, args.on or today(app), args.sample), _previewed, args.json)
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
