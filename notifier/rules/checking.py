"""`rules check`: every rule file, the data dictionary, every template and every embedded test.

Embedded tests run through the same compiled SQL that production uses (on a throwaway
in-memory SQLite database), so what was checked is what runs. Templates are rendered
against a sample resident so a missing variable is found now, with its file and line, and
against one who lacks every value the rule does not require, so a template that would print
an empty or "None" value for some matched resident fails here rather than at `runs create`.
A test may also state the resident's `amount` and the text each channel renders (`expect_text`),
rendered from the same row and amount the query produced.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from ..errors import InputError, NotifierError, Problem
from ..fields import DataDictionary, FieldType, load_dictionary
from ..rendering.context import ResidentContext, amount_value, params_context
from ..rendering.smsparams import TemplateParams
from ..rendering.templates import TemplateSet, display_value, item_context, template_context
from ..status import Channel
from ..storage.fieldcols import column_name, residents_table
from ..storage.schema import records
from .amounts import fen_to_yuan
from .compile import OUTCOME, compile_rule, params_in_force, result_name
from .load import load_rules, rule_files
from .model import Combinator, Condition, FieldCondition, Rule, RuleTest, amount_fields, jsonable

SAMPLE_TEXT = {
    "name": "张三",
    "phone": "+8613800000000",
    "email": "zhangsan@example.com",
    "id_number": "110101199003070000",
    "address": "某县某镇某村1号",
    "village": "某村",
    "township": "某镇",
    "resident_id": "R0000000",
    "preferred_channel": "sms",
}


@dataclass
class CheckReport:
    files: int = 0
    rules: list[str] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # shown, but the check still passes
    passed: int = 0
    failed: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors and self.failed == 0

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "files": self.files,
            "rules": self.rules,
            "errors": [
                {"file": p.file, "line": p.line, "column": p.column, "message": p.message}
                for p in self.errors
            ],
            "warnings": [
                {"file": p.file, "line": p.line, "column": p.column, "message": p.message}
                for p in self.warnings
            ],
            "tests": {"passed": self.passed, "failed": self.failed},
        }


def sample_value(spec: Any) -> Any:
    return {
        FieldType.INT: 3,
        FieldType.DECIMAL: Decimal("1234.5"),
        FieldType.DATE: date(1960, 5, 1),
        FieldType.BOOL: True,
        FieldType.TEXT: "示例",
    }.get(spec.type, next(iter(spec.values), "示例"))


CONTACT = {Channel.SMS: "phone", Channel.EMAIL: "email", Channel.LETTER: "address"}


def present_when_matched(cond: Condition) -> set[str]:
    """Fields every resident the condition matches has a value for: those its passing
    requires (a condition with `if_missing: pass` or `is_missing: true` requires none)."""
    if isinstance(cond, FieldCondition):
        if cond.op == "is_missing":
            return set() if cond.value else {cond.field}
        return set() if cond.if_missing == "pass" else {cond.field}
    if isinstance(cond, Combinator) and cond.children:
        parts = [present_when_matched(c) for c in cond.children]
        if cond.op == "all":
            return set().union(*parts)
        if cond.op == "any":
            return set.intersection(*parts)
    return set()


def _amount_fields(rule: Rule) -> set[str]:
    """A matched resident has every field the amount reads (else the result is review)."""
    return set(amount_fields(rule.amount)) if rule.amount is not None else set()


def sample_context(
    rule: Rule, dictionary: DataDictionary, on: date, keep: set[str] | None = None
) -> dict[str, Any]:
    """A sample resident with every field filled, or (with `keep`) only those fields."""
    row = SimpleNamespace(
        **{
            column_name(s): SAMPLE_TEXT.get(n, sample_value(s)) if keep is None or n in keep else None
            for n, s in dictionary.all_fields().items()
        }
    )
    params = {
        name: display_value(p.value_on(on) or (p.values[-1][1] if p.values else Decimal(0)))
        for name, p in rule.parameters.items()
    }
    context = template_context(
        ResidentContext(dictionary)(row), item_context(rule.item, dictionary.domains), params, 0, rule.id, on
    )
    context["amount"] = amount_value(rule, SAMPLE_FEN)
    return context


SAMPLE_FEN = 123450  # what `{{ amount }}` is in template checks: 1234.50


def check_templates(rule: Rule, dictionary: DataDictionary) -> list[Problem]:
    on = rule.item.publish_from or date.today()
    required = present_when_matched(rule.match) | {"resident_id"} | _amount_fields(rule)
    try:
        ts = TemplateSet(rule.templates, rule.template_sources)
        ctx = sample_context(rule, dictionary, on)
        for ch in rule.templates:
            ts.render(ch, ctx)
    except NotifierError as exc:
        return _problems(rule, exc)
    problems = []
    for ch in rule.templates:
        try:
            ts.render(ch, sample_context(rule, dictionary, on, required | {CONTACT[ch]}))
        except NotifierError as exc:
            problems += _problems(
                rule, exc, "for a matched resident who lacks data the rule does not require: "
            )
    return problems


def check_sms_templates(
    rule: Rule, dictionary: DataDictionary, max_variable: Mapping[str, int] | None = None
) -> list[Problem]:
    """The registered SMS templates (sms_templates:) against the rule's own SMS template, for the
    sample resident and for one who lacks what the rule does not require: the registered text
    with its variables filled must be exactly the SMS the template renders, and within the
    providers' limits. Problems name the rule file's line (the template's own errors are
    reported by check_templates)."""
    if not rule.sms_templates or Channel.SMS not in rule.templates:
        return []
    on = rule.item.publish_from or date.today()
    required = present_when_matched(rule.match) | {"resident_id", CONTACT[Channel.SMS]} | _amount_fields(rule)
    try:
        params = TemplateParams(rule.file, rule.sms_templates)
        ts = TemplateSet(rule.templates, rule.template_sources)
    except NotifierError as exc:
        return _problems(rule, exc)
    found: dict[tuple[int | None, str], Problem] = {}  # one per line and kind of problem
    for ctx in (sample_context(rule, dictionary, on), sample_context(rule, dictionary, on, required)):
        try:
            body = ts.render(Channel.SMS, ctx).body
        except NotifierError:
            continue  # check_templates reports it
        try:
            calls = params.render(ctx)
        except NotifierError as exc:
            problems = _problems(rule, exc)
        else:
            problems = params.differences(calls, body) + params.limits(calls, max_variable or {})
        for p in problems:
            found.setdefault(
                (p.line, re.sub(r"\d+", "", p.message.split(":")[1] if ":" in p.message else "")[:30]), p
            )
    return list(found.values())


def _problems(rule: Rule, exc: NotifierError, prefix: str = "") -> list[Problem]:
    return [
        Problem(prefix + p.message, file=rule.template_file(p.file), line=p.line, column=p.column)
        for p in getattr(exc, "problems", [])
    ] or [Problem(exc.message, file=rule.file)]


def _test_engine(dictionary: DataDictionary) -> tuple[sa.Engine, sa.Table]:
    engine = sa.create_engine("sqlite://", hide_parameters=True)
    table = residents_table(dictionary)
    table.create(engine)
    records.create(engine)
    return engine, table


def run_tests(rule: Rule, dictionary: DataDictionary, engine: sa.Engine, table: sa.Table) -> list[Problem]:
    problems = []
    now = datetime.now(timezone.utc)
    for i, test in enumerate(rule.tests):
        rid = f"test-{i}"
        row = {column_name(dictionary.all_fields()[k]): v for k, v in test.resident.items()}
        with engine.begin() as conn:
            conn.execute(table.delete())
            conn.execute(sa.text("DELETE FROM records"))
            conn.execute(table.insert().values(resident_id=rid, created_at=now, updated_at=now, **row))
            for kind, recs in test.records.items():
                date_field = dictionary.records[kind].date_field
                for j, rec in enumerate(recs):
                    conn.execute(
                        records.insert().values(
                            kind=kind,
                            resident_id=rid,
                            record_date=rec.get(date_field) if date_field else None,
                            data=jsonable(rec),
                            fingerprint=f"{i}-{j}",
                            imported_at=now,
                        )
                    )
            compiled = compile_rule(rule, dictionary, table, test.on)
            got = conn.execute(compiled.query).one()
            person = conn.execute(sa.select(table)).one()
        result = result_name(got.result)
        fen = None if compiled.amount is None or got.amount is None else int(got.amount)
        problems += _amount_and_texts(rule, dictionary, test, person, fen)
        if result != test.expect:
            conds = ", ".join(
                f"{leaf.id} {OUTCOME[getattr(got, f'cond_{leaf.id}')]}" for leaf in compiled.leaves
            )
            problems.append(
                Problem(
                    f"test {test.name!r}: expected {test.expect}, got {result} ({conds})",
                    file=rule.file,
                    line=test.mark[0],
                    column=test.mark[1],
                )
            )
    return problems


def _amount_and_texts(
    rule: Rule, dictionary: DataDictionary, test: RuleTest, person: Any, fen: int | None
) -> list[Problem]:
    """A test's `amount:` and `expect_text:` against the computed amount and rendered channels."""
    out = []

    def fail(message: str) -> None:
        out.append(
            Problem(f"test {test.name!r}: {message}", file=rule.file, line=test.mark[0], column=test.mark[1])
        )

    got = fen_to_yuan(fen)
    if (
        test.expects_amount
        and (got is None) != (test.amount is None)
        or (got is not None and test.amount is not None and got != test.amount)
    ):
        want = "no amount" if test.amount is None else f"amount {test.amount}"
        fail(f"expected {want}, got {'no amount' if got is None else f'amount {got}'}")
    if not test.expect_text:
        return out
    context = template_context(
        ResidentContext(dictionary)(person),
        item_context(rule.item, dictionary.domains),
        params_context(params_in_force(rule, test.on)),
        0,
        rule.id,
        test.on,
    )
    context["amount"] = amount_value(rule, fen)
    templates = TemplateSet(rule.templates, rule.template_sources)
    for channel, wanted in test.expect_text.items():
        if channel not in rule.templates:
            fail(f"expect_text.{channel.value}: the rule has no {channel.value} template")
            continue
        try:
            body = templates.render(channel, context).body
        except NotifierError as exc:
            fail(f"{channel.value} does not render: {exc.message}")
            continue
        if wanted.equals is not None and body != wanted.equals.strip():
            fail(f"{channel.value} text differs:\n  expected: {wanted.equals.strip()}\n  rendered: {body}")
        for part in wanted.contains:
            if part not in body:
                fail(f"{channel.value} text lacks {part!r}; rendered: {body}")
    return out


def check_rules(
    paths: list[Path],
    fields_file: Path,
    templates_dir: Path,
    max_variable: Mapping[str, int] | None = None,
    template_kinds: Sequence[str] = (),
) -> CheckReport:
    """Check rule files; `max_variable` is the longest template variable each provider kind
    takes (from its `[providers.*] max_variable_length`; default rendering.smsparams.MAX_VARIABLE);
    `template_kinds` are the configured SMS providers' kinds that send registered templates only,
    which every rule sending SMS must then map (sms_templates.<kind>)."""
    report = CheckReport()
    try:
        dictionary = load_dictionary(fields_file)
    except InputError as exc:
        report.errors.extend(exc.problems or [Problem(exc.message, file=str(fields_file))])
        return report
    files: list[Path] = []
    for p in paths:
        files.extend(rule_files(p) if p.is_dir() else [p])
    report.files = len(files)
    rules, problems = load_rules(files, dictionary, templates_dir)
    report.errors.extend(problems)
    engine, table = _test_engine(dictionary)
    for rule in rules.values():
        report.rules.append(rule.id)
        report.warnings.extend(rule.warnings)
        for view in [rule.for_change(k) for k in rule.change_templates] or [rule]:
            report.errors.extend(check_templates(view, dictionary))
        report.errors.extend(check_sms_templates(rule, dictionary, max_variable))
        for kind in template_kinds:
            if Channel.SMS in rule.channels and kind not in rule.sms_templates:
                report.errors.append(
                    Problem(
                        f"rule {rule.id!r} sends SMS and [channels.sms] providers include {kind}, which "
                        f"sends registered templates only: add sms_templates.{kind} (docs/providers.md)",
                        file=rule.file,
                        line=1,
                        column=1,
                    )
                )
        try:
            failures = run_tests(rule, dictionary, engine, table)
        except NotifierError as exc:
            report.errors.extend(getattr(exc, "problems", []) or [Problem(exc.message, file=rule.file)])
            continue
        report.failed += len(failures)
        report.passed += len(rule.tests) - len(failures)
        report.errors.extend(failures)
    engine.dispose()
    return report


__all__ = ["CheckReport", "check_rules"]
