"""`rules preview` and `rules explain`: who a rule reaches and why, before anything is sent."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from .app import App
from .audience import Member, evaluate
from .errors import NotFound, Problem, RuleError
from .households import Notice, notices, places
from .messages import member_rows
from .rendering.context import ResidentContext, amount_value, params_context
from .rendering.segments import count_segments
from .rendering.templates import TemplateSet, display_value, item_context, template_context
from .rules.amounts import Describer, fen_to_yuan
from .rules.compile import OUTCOME, compile_rule, params_in_force, result_name
from .rules.counting import count_many
from .rules.model import FieldCondition, ParamRef, Rule
from .runs import window_problem
from .runs.changes import classify
from .status import Channel
from .storage.fieldcols import column_name
from .storage.schema import records


@dataclass(frozen=True)
class Sample:
    """One sample message as a resident would get it, personal data masked; or why it cannot render."""

    resident: str
    channel: str
    subject: str | None = None
    body: str = ""
    segments: int | None = None  # SMS only
    encoding: str | None = None  # SMS only
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        if self.error is not None:
            return {"resident": self.resident, "channel": self.channel, "error": self.error}
        sms = {"segments": self.segments, "encoding": self.encoding} if self.segments is not None else {}
        return {
            "resident": self.resident,
            "channel": self.channel,
            "subject": self.subject,
            "body": self.body,
            **sms,
        }


@dataclass(frozen=True)
class Preview:
    """What `rules preview` of one rule answers: counts, channels, SMS cost and samples."""

    rule: str
    version: str
    on: date
    counts: dict[str, int]  # match, no_match, review
    by_channel: dict[str, int]
    sms_segments: int
    sms_cost: float
    review_conditions: list[dict[str, object]]
    params: dict[str, dict[str, Any]]
    samples: list[Sample]
    no_contact: int
    warnings: list[str]
    notices: int = 0  # after notify: household | contact (counts are residents)
    notify: str = "resident"
    amount: Amounts | None = None
    changes: dict[str, int | None] | None = None  # `audience: changes`: what a run would notify

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "version": self.version,
            "on": self.on.isoformat(),
            **self.counts,
            "notices": self.notices,
            "notify": self.notify,
            "amount": self.amount.as_json() if self.amount else None,
            "by_channel": self.by_channel,
            "sms_segments": self.sms_segments,
            "sms_cost": self.sms_cost,
            "review_conditions": self.review_conditions,
            "params": self.params,
            "samples": [s.as_json() for s in self.samples],
            "no_contact": self.no_contact,
            "warnings": self.warnings,
            **({"changes": self.changes} if self.changes is not None else {}),
        }


@dataclass(frozen=True)
class Amounts:
    """The budget check: what the notices state in total and by village (yuan), and how many lack one."""

    total: Decimal
    by_village: dict[str, Decimal]
    undetermined: int  # notices whose amount is unknown

    def as_json(self) -> dict[str, Any]:
        return {
            "total": str(self.total),
            "by_village": {k: str(v) for k, v in self.by_village.items()},
            "undetermined": self.undetermined,
        }


def amount_totals(app: App, sent: list[Notice]) -> Amounts:
    """Totals by the addressee's village (a household head's, for notify: household)."""
    villages: dict[str, int] = {}
    where = places(app, [n.resident_id for n in sent])
    for n in sent:
        place = where.get(n.resident_id)
        village = (place.village if place else None) or "（未填村）"
        villages[village] = villages.get(village, 0) + (n.amount or 0)
    return Amounts(
        fen_to_yuan(sum(villages.values())) or Decimal(0),
        {v: fen_to_yuan(f) or Decimal(0) for v, f in sorted(villages.items())},
        sum(1 for n in sent if n.amount is None),
    )


def preview(app: App, rule: Rule, on: date, sample: int = 3, *, per_channel: bool = False) -> Preview:
    """Counts, channels, SMS segments and masked samples: the first `sample` members reached,
    or (`per_channel`) the first `sample` of each channel, so every template is seen. Rendering
    errors (a template that cannot render for some resident) are listed, not raised: `runs
    create` refuses such a run."""
    warnings = (
        [f"{why}: `runs create --on {on.isoformat()}` would be refused"]
        if (why := window_problem(rule, on))
        else []
    )
    aud = evaluate(app, rule, on)
    sent = notices(app, aud)
    fen = {n.resident_id: n.amount for n in sent}
    members = [n.member for n in sent]
    templates = TemplateSet(rule.templates, rule.template_sources)
    by_id = {m.resident_id: m for m in members}
    segments = 0
    samples: list[Sample] = []
    params = params_in_force(rule, on)
    item, values = item_context(rule.item, app.dictionary.domains), params_context(params)
    plain, masked = ResidentContext(app.dictionary), ResidentContext(app.dictionary, masked=True)
    failing: dict[str, int] = {}
    for row, _ in member_rows(app, [m for m in members if m.channel is Channel.SMS]):
        try:
            context = template_context(plain(row), item, values, None, rule.id, on)
            context["amount"] = amount_value(rule, fen.get(row.resident_id))
            body = templates.render(Channel.SMS, context).body
        except RuleError as exc:
            for p in exc.problems:
                where = f"{p.file}:{p.line}: {p.message}"
                failing[where] = failing.get(where, 0) + 1
            continue
        segments += count_segments(body).segments
    warnings += [f"{where} ({n} resident(s))" for where, n in failing.items()]
    for row, m in member_rows(app, _sampled(members, sample, per_channel)):
        assert m.channel is not None
        try:
            context = template_context(masked(row), item, values, None, rule.id, on)
            context["amount"] = amount_value(rule, fen.get(row.resident_id))
            rendered = templates.render(m.channel, context)
        except RuleError as exc:
            samples.append(Sample(m.resident_id, m.channel.value, error=str(exc)))
            continue
        seg = count_segments(rendered.body) if m.channel is Channel.SMS else None
        samples.append(
            Sample(
                m.resident_id,
                m.channel.value,
                rendered.subject,
                rendered.body,
                seg.segments if seg else None,
                seg.encoding if seg else None,
            )
        )
    price = app.config.channels.get(Channel.SMS)
    return Preview(
        rule=rule.id,
        version=rule.version,
        on=on,
        counts=aud.counts,
        by_channel=_by_channel(members),
        sms_segments=segments,
        sms_cost=round(segments * (price.price_per_segment if price else 0.0), 2),
        review_conditions=aud.review_conditions,
        params=params,
        samples=samples,
        no_contact=sum(1 for m in by_id.values() if m.channel is None),
        warnings=warnings,
        notices=len(sent),
        notify=rule.notify,
        amount=amount_totals(app, sent) if rule.amount is not None else None,
        changes=classify(app, rule, on, aud, sent).counts() if rule.audience == "changes" else None,
    )


def _by_channel(members: list[Member]) -> dict[str, int]:
    c = Counter(m.channel.value if m.channel else "none" for m in members)
    return {k: c.get(k, 0) for k in ("sms", "email", "letter", "none")}


def _sampled(members: list[Member], n: int, per_channel: bool) -> list[Member]:
    reached = [m for m in members if m.channel]
    if not per_channel:
        return reached[:n]
    taken: Counter[Channel | None] = Counter()
    out = []
    for m in reached:
        if taken[m.channel] < n:
            taken[m.channel] += 1
            out.append(m)
    return out


@dataclass(frozen=True)
class RuleCounts:
    """One rule's line in a preview of several rules."""

    rule: str
    version: str
    counts: dict[str, int]
    by_channel: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "version": self.version,
            "counts": self.counts,
            "by_channel": self.by_channel,
        }


@dataclass(frozen=True)
class PreviewSummary:
    """`rules preview` of several rules: counts only, plus the rule files that did not load."""

    on: date
    rules: list[RuleCounts]
    errors: list[Problem] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 3 if self.errors else 0

    def as_json(self) -> dict[str, Any]:
        return {
            "on": self.on.isoformat(),
            "rules": [r.as_json() for r in self.rules],
            "errors": [p.as_json() for p in self.errors],
        }


def preview_many(
    app: App, rules: list[Rule], on: date, errors: list[Problem] | None = None
) -> PreviewSummary:
    """Counts and channels of several rules from one scan of the register, counted by the
    database (rules/counting.py: the same counts and channels as each rule's audience). Nothing
    is rendered (samples and SMS segments are the single-rule preview's), so a whole rules
    folder is cheap. `errors`: rule files that did not load, reported alongside."""
    counted = count_many(app, rules, on)
    lines = [RuleCounts(r.id, r.version, counted[r.id].counts, counted[r.id].by_channel) for r in rules]
    return PreviewSummary(on, lines, errors or [])


OP_WORDS = {
    "equals": "为",
    "not_equals": "不为",
    "in": "属于",
    "not_in": "不属于",
    "less_than": "低于",
    "at_most": "不高于",
    "greater_than": "高于",
    "at_least": "不低于",
    "between": "介于",
    "is_missing": "缺少",
    "age_at_least": "年满",
    "age_below": "未满",
}
RESULT_WORDS = {"pass": "符合", "fail": "不符合", "unknown": "无法判断（缺少数据）"}


def _label(spec: Any, value: Any) -> str:
    """A value as staff wrote it: enum values by their first spelling (农村, not rural), with the unit."""
    if value is None:
        return "无数据"
    if isinstance(value, bool):
        return "是" if value else "否"
    if spec.values and value in spec.values and spec.values[value]:
        return str(spec.values[value][0])
    text = value.isoformat() if isinstance(value, date) else str(display_value(value))
    return f"{text}{spec.unit}" if spec.unit else text


@dataclass(frozen=True)
class Explanation:
    """Why one resident does or does not match: each condition with its value, threshold and outcome."""

    rule: str
    version: str
    resident: str
    on: date
    result: str  # match | no_match | review
    summary: str
    conditions: list[dict[str, Any]]  # id, label, result, text, and per kind the value compared
    params: dict[str, dict[str, Any]]
    amount: str | None = None  # yuan, as the run would state it (rules with amount:)
    amount_steps: list[str] = field(default_factory=list)  # the computation in Chinese

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "version": self.version,
            "resident": self.resident,
            "on": self.on.isoformat(),
            "result": self.result,
            "summary": self.summary,
            "conditions": self.conditions,
            "params": self.params,
            "amount": self.amount,
            "amount_steps": self.amount_steps,
        }


def explain(app: App, rule: Rule, resident_id: str, on: date) -> Explanation:
    """Each condition with the resident's value, the threshold in force and its source, and the
    outcome in words a resident could be told. Uses the same compiled query as runs."""
    c = compile_rule(rule, app.dictionary, app.residents, on)
    t = app.residents
    with app.engine.connect() as conn:
        got = conn.execute(c.query.where(t.c.resident_id == resident_id)).one_or_none()
        person = conn.execute(sa.select(t).where(t.c.resident_id == resident_id)).one_or_none()
        recs = conn.execute(
            sa.select(records.c.kind, records.c.record_date, records.c.data)
            .where(records.c.resident_id == resident_id)
            .order_by(records.c.record_date)
        ).all()
    if got is None or person is None:
        raise NotFound(f"no resident {resident_id!r} in the register")
    conditions: list[dict[str, Any]] = []
    for leaf in c.leaves:
        outcome = OUTCOME[getattr(got, f"cond_{leaf.id}")]
        entry: dict[str, Any] = {"id": leaf.id, "label": leaf.label, "result": outcome}
        if isinstance(leaf, FieldCondition):
            spec = app.dictionary.all_fields()[leaf.field]
            raw = getattr(person, column_name(spec))
            private = spec.name in PRIVATE
            threshold = c.thresholds.get(leaf.id)
            shown = (
                "、".join(_label(spec, v) for v in threshold)
                if isinstance(threshold, tuple)
                else f"{threshold}岁"
                if leaf.op.startswith("age_")
                else _label(spec, threshold)
                if leaf.op != "is_missing"
                else ""
            )
            ref = next(
                (
                    rule.parameters[v.name]
                    for v in (leaf.value if isinstance(leaf.value, tuple) else (leaf.value,))
                    if isinstance(v, ParamRef)
                ),
                None,
            )
            entry.update(
                field=leaf.field,
                op=leaf.op,
                value=None if raw is None else "***" if private else _show(raw),
                threshold=_show(threshold),
            )
            if ref is not None:
                entry["parameter"] = {"name": ref.name, "reference": ref.reference, "unit": ref.unit}
            value_text = "***" if private and raw is not None else _label(spec, raw)
            entry["text"] = (
                f"{leaf.label}：{spec.label}{value_text}，要求{OP_WORDS[leaf.op]}{shown}"
                + (f"（依据{ref.reference}）" if ref is not None and ref.reference else "")
                + f" — {RESULT_WORDS[outcome]}"
            )
        else:
            kind = app.dictionary.records[leaf.kind]
            wanted = dict(leaf.where)
            cutoff = c.thresholds.get(leaf.id)
            found = [
                r
                for r in recs
                if r.kind == leaf.kind
                and all(str(r.data.get(k)) == str(v) for k, v in wanted.items())
                and (cutoff is None or (r.record_date is not None and r.record_date >= cutoff))
            ]
            entry.update(
                records=leaf.kind,
                within_years=leaf.within_years,
                value=[r.record_date.isoformat() if r.record_date else None for r in found],
            )
            since = f"{cutoff.isoformat()}以来" if cutoff else ""
            entry["text"] = (
                f"{leaf.label}：{since}{kind.label}{len(found)}条"
                + (f"（{'、'.join(e for e in entry['value'] if e)}）" if found else "")
                + f" — {RESULT_WORDS[outcome]}"
            )
        conditions.append(entry)
    result = result_name(got.result)
    failing = [x["label"] for x in conditions if x["result"] == "fail"]
    unknown = [x["label"] for x in conditions if x["result"] == "unknown"]
    summary = {
        "match": "符合全部条件，将收到本项通知。",
        "no_match": f"不符合条件：{'、'.join(failing)}。" if failing else "不符合条件。",
        "review": f"因缺少数据无法判断（{'、'.join(unknown)}），需工作人员核实后确定。",
    }[result]
    steps: list[str] = []
    amount = None
    if rule.amount is not None:
        fields = app.dictionary.all_fields()
        labels = {n: (s.label, s.unit) for n, s in fields.items()}
        values = {n: getattr(person, column_name(s), None) for n, s in fields.items()}
        described = Describer(rule, labels, on).describe(rule.amount, values)
        steps = described.lines
        sql_fen = got.amount
        amount = str(fen_to_yuan(None if sql_fen is None else int(sql_fen)))
        if sql_fen is None:
            amount = None
            steps.append("金额无法计算（缺少数据），需工作人员核实。")
        else:
            steps.append(f"金额：{fen_to_yuan(int(sql_fen))}元")
    return Explanation(
        rule.id, rule.version, resident_id, on, result, summary, conditions, c.params_used, amount, steps
    )


PRIVATE = frozenset({"phone", "id_number", "name", "email", "address"})


def _show(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_show(v) for v in value]
    if value is None or isinstance(value, (bool, int)):
        return value
    return str(display_value(value)) if not isinstance(value, date) else value.isoformat()
