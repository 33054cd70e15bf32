"""Who a rule reaches on a date, and through which channel.

Counts come from one GROUP BY over the compiled rule query; the matched residents come from
the same query joined with their contacts. Each resident gets the first reachable channel in
the rule's order (their own preferred channel first, if the rule offers it).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa

from .app import App
from .rules.compile import MATCH, NO_MATCH, REVIEW, UNKNOWN, CompiledRule, compile_rule
from .rules.model import Rule
from .status import Channel
from .storage.schema import opt_outs


@dataclass(frozen=True)
class Member:
    resident_id: str
    channel: Channel | None
    recipient: str | None
    reason: str | None           # why no channel could be used


@dataclass
class Audience:
    compiled: CompiledRule
    counts: dict[str, int]
    members: list[Member] = field(default_factory=list)
    review_conditions: list[dict[str, object]] = field(default_factory=list)

    def by_channel(self) -> dict[str, int]:
        c = Counter(m.channel.value if m.channel else "none" for m in self.members)
        return {k: c.get(k, 0) for k in ("sms", "email", "letter", "none")}


def choose_channel(channels: list[Channel], preferred: str | None, phone: str | None, phone_kind: str | None,
                   email: str | None, address: str | None, opted_out: bool) -> tuple[Channel | None, str | None, str | None]:
    order = list(channels)
    if preferred in order:
        order.remove(Channel(preferred))
        order.insert(0, Channel(preferred))
    reasons = []
    for ch in order:
        if ch is Channel.SMS:
            if phone and phone_kind == "mobile" and not opted_out:
                return ch, phone, None
            reasons.append("opted out of SMS" if opted_out else "no mobile number")
        elif ch is Channel.EMAIL:
            if email:
                return ch, email, None
            reasons.append("no e-mail")
        elif ch is Channel.LETTER:
            if address:
                return ch, address, None
            reasons.append("no postal address")
    return None, None, "no usable contact: " + ", ".join(reasons)


def _count_if(predicate: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((predicate, 1), else_=0)), 0)


def evaluate(app: App, rule: Rule, on: date, *, members: bool = True) -> Audience:
    compiled = compile_rule(rule, app.dictionary, app.residents, on)
    t = app.residents
    with app.engine.connect() as conn:
        matched, failed, total = conn.execute(sa.select(_count_if(compiled.matches), _count_if(compiled.fails),
                                                        sa.func.count()).select_from(t)).one()
        counts = {MATCH: int(matched), NO_MATCH: int(failed), REVIEW: int(total - matched - failed)}
        audience = Audience(compiled, counts)
        if counts[REVIEW]:  # which conditions lacked data, among the residents left for review
            lacking = conn.execute(sa.select(*[sa.func.sum(sa.case((cond == UNKNOWN, 1), else_=0))
                                               for cond in compiled.conditions.values()])
                                   .where(sa.not_(compiled.matches), sa.not_(compiled.fails))).one()
            audience.review_conditions = [{"id": leaf.id, "label": leaf.label, "missing": int(k)}
                                          for leaf, k in zip(compiled.leaves, lacking) if k]
        if members:
            opted = sa.exists().where(opt_outs.c.phone == t.c.phone)
            rows = conn.execute(
                sa.select(t.c.resident_id, t.c.preferred_channel, t.c.phone, t.c.phone_kind, t.c.email, t.c.address,
                          opted.label("opted_out")).where(compiled.matches).order_by(t.c.resident_id))
            for r in rows:
                ch, recipient, reason = choose_channel(rule.channels, r.preferred_channel, r.phone, r.phone_kind,
                                                       r.email, r.address, bool(r.opted_out))
                audience.members.append(Member(r.resident_id, ch, recipient, reason))
    return audience
