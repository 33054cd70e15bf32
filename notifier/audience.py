"""Who a rule reaches on a date, and through which channel.

One scan of the residents table answers one rule or many. It keeps only the residents some rule
matches or leaves for review (`NOT fails`, a few % per rule, short-circuited by the database
like hand-written AND/OR), with their contacts, each rule's result and whether the data behind
each review-able condition is missing. Counts are tallied from those rows and no_match is the
rest of the register, so a rule costs one pass instead of a count, a review and a member query.
Each matched resident gets the first reachable channel in the rule's order (their own preferred
channel first, if the rule offers it).

A rule's amount (fen) rides in its result column: 2 + 4 x fen for a match (0 and 1 stay no_match
and review), so the amount is computed only for the residents the rule matches, inside the CASE
that decides the result, and the scan costs about what it costs without amounts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import compress
from operator import attrgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction

from .app import App
from .rules.compile import FAIL, MATCH, NO_MATCH, PASS, REVIEW, UNKNOWN, CompiledRule, compile_rule
from .rules.model import Rule
from .status import Channel
from .storage.schema import opt_outs

CONTACTS = ("resident_id", "preferred_channel", "phone", "phone_kind", "email", "address", "opted_out")
CHUNK = 20_000  # rows fetched and tallied at a time: the kept rows are never all in memory at once


@dataclass(frozen=True)
class Member:
    resident_id: str
    channel: Channel | None
    recipient: str | None
    reason: str | None  # why no channel could be used


@dataclass
class Audience:
    compiled: CompiledRule
    counts: dict[str, int]
    members: list[Member] = field(default_factory=list)
    review_conditions: list[dict[str, object]] = field(default_factory=list)
    amounts: dict[str, int | None] = field(default_factory=dict)  # member -> fen (rules with amount:)

    def by_channel(self) -> dict[str, int]:
        c = Counter(m.channel.value if m.channel else "none" for m in self.members)
        return {k: c.get(k, 0) for k in ("sms", "email", "letter", "none")}


def choose_channel(
    channels: list[Channel],
    preferred: str | None,
    phone: str | None,
    phone_kind: str | None,
    email: str | None,
    address: str | None,
    opted_out: bool,
) -> tuple[Channel | None, str | None, str | None]:
    order = list(channels)
    if preferred in order:
        order.remove(Channel(preferred))
        order.insert(0, Channel(preferred))
    reasons = []
    for ch in order:
        to = None if ch is Channel.SMS and opted_out else reach(ch, phone, phone_kind, email, address)
        if to is not None:
            return ch, to, None
        reasons.append("opted out of SMS" if ch is Channel.SMS and opted_out else _UNREACHED[ch])
    return None, None, "no usable contact: " + ", ".join(reasons)


_UNREACHED = {
    Channel.SMS: "no mobile number",
    Channel.EMAIL: "no e-mail",
    Channel.LETTER: "no postal address",
}


def reach(
    channel: Channel, phone: str | None, phone_kind: str | None, email: str | None, address: str | None
) -> str | None:
    """The recipient on this one channel, or None: a mobile number, an e-mail, a postal address
    (opt-outs are the caller's: a fallback goes where the register says it can)."""
    if channel is Channel.SMS:
        return phone if phone and phone_kind == "mobile" else None
    if channel is Channel.EMAIL:
        return email or None
    if channel is Channel.LETTER:
        return address or None
    return None


class scan_order(GenericFunction[str]):
    """An ORDER BY key that SQLite sorts the kept rows by instead of walking the whole table in
    primary-key order: that walk reads pages at random unless rows were imported in id order."""

    type = sa.String()
    inherit_cache = True


@compiles(scan_order)
def _scan_order(element: scan_order, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(scan_order, "sqlite")
def _scan_order_sqlite(element: scan_order, compiler: Any, **kw: Any) -> str:
    return f"+{compiler.process(element.clauses, **kw)}"  # unary + is a no-op that no index provides


@dataclass(frozen=True)
class _Scan:
    """The one query for a set of rules and where each value sits in its rows; the last value is
    the register size, counted by the same statement so that counts always add up."""

    query: sa.Select[Any]
    code_at: dict[str, int]  # rule id -> index of its result (2 match, 1 review, 0 no_match)
    null_at: dict[str, int]  # column name -> index of its "is NULL" flag


def _register_size(t: sa.Table) -> sa.Select[tuple[int]]:
    """The residents in the register's care: those who left (residents/leaving.py) are not counted."""
    return sa.select(sa.func.count()).select_from(t).where(t.c.left_at.is_(None))


def contact_columns(t: sa.Table) -> list[sa.ColumnElement[Any]]:
    """The CONTACTS of a resident row, opted_out computed against the opt-out list."""
    opted = sa.exists().where(opt_outs.c.phone == t.c.phone)
    return [*(t.c[name] for name in CONTACTS[:-1]), opted.label(CONTACTS[-1])]


def result_code(c: CompiledRule, members: bool = False) -> sa.ColumnElement[int]:
    """The rule's result (as `c.result`) from its plain predicates, which stop at the first
    decisive condition: cheaper for the many rules a kept resident does not concern. With an
    amount, a match is 2 + 4 x fen (exact integers; fen may be negative: v % 4 == 2 still)."""
    if members and c.amount is not None:
        return sa.case((c.fails, FAIL), (c.matches, PASS + 4 * c.amount), else_=UNKNOWN)
    return sa.case((c.fails, FAIL), (c.matches, PASS), else_=UNKNOWN)


def _scan(t: sa.Table, compiled: Sequence[CompiledRule], members: bool) -> _Scan:
    """Residents that some rule does not fail. Rules needing related-records lookups are tried
    last, so a resident already kept by a cheap rule never pays for them in the filter."""
    head: list[sa.ColumnElement[Any]] = []
    if members:
        head = contact_columns(t)
    nullable = {str(col.key): col for c in compiled for col in c.unknown_when_null.values()}
    codes = [result_code(c, members) for c in compiled]
    flags = [col.is_(None) for col in nullable.values()]
    query = (
        sa.select(*head, *codes, *flags, _register_size(t).scalar_subquery().correlate(None))
        .select_from(t)
        .where(
            t.c.left_at.is_(None),  # a resident who left gets no notice (residents/leaving.py)
            sa.or_(*[sa.not_(c.fails) for c in sorted(compiled, key=lambda c: c.costly)]),
        )
    )
    if members:
        query = query.order_by(scan_order(t.c.resident_id))
    code_at = {c.rule.id: len(head) + i for i, c in enumerate(compiled)}
    null_at = {name: len(head) + len(codes) + i for i, name in enumerate(nullable)}
    return _Scan(query, code_at, null_at)


_RESIDENT = attrgetter("resident_id")


class _Members:
    """Members of one chunk of rows, built once per resident and channel order: rules offering
    the same channels share them (Member is immutable)."""

    def __init__(self, rows: Sequence[Sequence[Any]]) -> None:
        self.rows = rows
        self.cache: dict[tuple[Channel, ...], dict[int, Member]] = {}

    def pick(self, channels: list[Channel], indexes: list[int]) -> list[Member]:
        known = self.cache.setdefault(tuple(channels), {})
        for i in indexes:
            if i not in known:
                rid, preferred, phone, kind, email, address, opted = self.rows[i][: len(CONTACTS)]
                known[i] = Member(
                    rid, *choose_channel(channels, preferred, phone, kind, email, address, bool(opted))
                )
        return list(map(known.__getitem__, indexes))


class _Tally:
    """One rule's share of a scan: match and review rows, missing data among reviews, members."""

    def __init__(self, compiled: CompiledRule, scan: _Scan) -> None:
        self.compiled = compiled
        self.code_at = scan.code_at[compiled.rule.id]
        self.flag_at = {
            leaf_id: scan.null_at[str(col.key)] for leaf_id, col in compiled.unknown_when_null.items()
        }
        self.matched = self.review = 0
        self.missing: Counter[str] = Counter()
        self.members: list[Member] = []
        self.with_amount = compiled.rule.amount is not None
        self.amounts: dict[str, int | None] = {}

    def add(self, columns: list[tuple[Any, ...]], members: _Members | None) -> None:
        codes = columns[self.code_at]
        kept = list(
            compress(range(len(codes)), codes)
        )  # not FAIL (0): a few % of the chunk, found at C speed
        if self.with_amount and members is not None:
            matched = [i for i in kept if codes[i] % 4 == PASS]
        else:
            matched = [i for i in kept if codes[i] == PASS]
        review = [i for i in kept if codes[i] == UNKNOWN]
        self.matched += len(matched)
        self.review += len(review)
        for leaf_id, at in self.flag_at.items():
            self.missing[leaf_id] += sum(map(columns[at].__getitem__, review))
        if members is not None:
            picked = members.pick(self.compiled.rule.channels, matched)
            self.members += picked
            if self.with_amount:
                fen = [(codes[i] - PASS) // 4 for i in matched]
                self.amounts.update(zip(map(_RESIDENT, picked), fen, strict=True))

    def audience(self, total: int) -> Audience:
        counts = {MATCH: self.matched, NO_MATCH: total - self.matched - self.review, REVIEW: self.review}
        lacking = [
            {"id": leaf.id, "label": leaf.label, "missing": int(self.missing[leaf.id])}
            for leaf in self.compiled.leaves
            if self.missing[leaf.id]
        ]
        lacking += [
            {"id": key, "label": f"amount: {key.removeprefix('amount_f_')}", "missing": int(n)}
            for key, n in self.missing.items()
            if key.startswith("amount_") and n
        ]
        return Audience(self.compiled, counts, self.members, lacking, self.amounts)


def evaluate_many(app: App, rules: Iterable[Rule], on: date, *, members: bool = True) -> dict[str, Audience]:
    """Every rule's audience from one scan of the residents table; each equals `evaluate`'s."""
    compiled = [
        compile_rule(rule, app.dictionary, app.residents, on) for rule in {r.id: r for r in rules}.values()
    ]
    if not compiled:
        return {}
    scan = _scan(app.residents, compiled, members)
    tallies = [_Tally(c, scan) for c in compiled]
    total = None
    with app.reader.connect() as conn:  # one snapshot, without holding SQLite's write lock
        for rows in conn.execution_options(yield_per=CHUNK).execute(scan.query).partitions():
            columns = list(zip(*rows, strict=False))
            total = columns[-1][0]
            chunk = _Members(rows) if members else None
            for tally in tallies:
                tally.add(columns, chunk)
        if total is None:  # nobody kept: no_match is the whole register
            total = conn.execute(_register_size(app.residents)).scalar_one()
    return {t.compiled.rule.id: t.audience(int(total)) for t in tallies}


def evaluate(app: App, rule: Rule, on: date, *, members: bool = True) -> Audience:
    """One rule: the same single scan, filtered by that rule alone."""
    return evaluate_many(app, [rule], on, members=members)[rule.id]
