"""Change notices (`audience: changes`): who joined, who left, whose amount changed.

County reports publish changes (低保变动情况) under 应保尽保，应退则退: a change run notifies only
residents whose result moved since the last completed run of the same rule — newly eligible
(joined), no longer eligible (left: the rule now decides no_match for them), amount changed
(changed) — each kind with its own templates. The first run of a rule has nothing to compare with
and is a full run: everybody eligible gets the joined notice.

"Eligible before" is what the baseline run kept in `run_eligible` (a change run), or its audience
(a full run: one delivery row per matched resident). A resident the rule can no longer decide
(data now missing: review) is not told they left; they stay eligible until the data says
otherwise. A resident who left the register (residents/leaving.py) is not written to.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa

from ..app import App
from ..audience import CONTACTS, Audience, Member, choose_channel, contact_columns, result_code
from ..households import Notice
from ..rules.compile import FAIL
from ..rules.model import CHANGE_KINDS, Rule
from ..status import RunStatus
from ..storage.bulk import executemany
from ..storage.schema import deliveries, run_eligible, run_messages, runs

CHUNK = 5000  # residents looked up per query


@dataclass
class ChangeSet:
    """A change run's notices by kind, and who it finds eligible (kept for the next change run)."""

    baseline: int | None  # the run compared against; None: the rule's first run, a full one
    members: dict[str, list[Member]] = field(default_factory=lambda: {k: [] for k in CHANGE_KINDS})
    eligible: dict[str, int | None] = field(default_factory=dict)  # resident -> amount in fen
    unchanged: int = 0
    undecided: int = 0  # eligible before, undecided now (review): no notice, still eligible
    gone: int = 0  # eligible before, no longer in the register's care: no notice

    def kind_of(self) -> dict[str, str]:
        return {m.resident_id: kind for kind, ms in self.members.items() for m in ms}

    def all_members(self) -> list[Member]:
        return [m for kind in CHANGE_KINDS for m in self.members[kind]]

    def counts(self) -> dict[str, int | None]:
        return {
            "baseline_run": self.baseline,
            **{k: len(v) for k, v in self.members.items()},
            "unchanged": self.unchanged,
            "undecided": self.undecided,
            "gone": self.gone,
        }


def describe(counts: dict[str, int | None]) -> str:
    """One line for a terminal: what a change run notifies and whom it leaves alone."""
    base = counts["baseline_run"]
    since = f"since run {base}" if base else "first run of the rule: a full one"
    return (
        f"changes ({since}): joined {counts['joined']}, left {counts['left']}, changed {counts['changed']}; "
        f"not notified: unchanged {counts['unchanged']}, undecided {counts['undecided']}, "
        f"gone {counts['gone']}"
    )


def baseline_run(conn: sa.Connection, rule_id: str, before: int | None = None) -> int | None:
    """The last completed run of the rule (before run `before`, if given)."""
    q = sa.select(sa.func.max(runs.c.id)).where(
        runs.c.rule_id == rule_id, runs.c.status == RunStatus.COMPLETED
    )
    if before is not None:
        q = q.where(runs.c.id < before)
    found = conn.execute(q).scalar_one_or_none()
    return int(found) if found is not None else None


def eligible_in(conn: sa.Connection, run_id: int) -> dict[str, int | None]:
    """Who run `run_id` found eligible, with the amount (fen) stated to them: its run_eligible
    rows, or (a full run) its audience and the amount of the message each was sent."""
    e = run_eligible
    kept = {
        r.resident_id: r.amount
        for r in conn.execute(sa.select(e.c.resident_id, e.c.amount).where(e.c.run_id == run_id))
    }
    if kept:
        return kept
    d, m = deliveries, run_messages
    return {
        r.resident_id: r.amount
        for r in conn.execute(
            sa.select(d.c.resident_id, m.c.amount)
            .select_from(d.outerjoin(m, m.c.id == d.c.message_id))
            .where(d.c.run_id == run_id, d.c.fallback_of.is_(None))
        )
    }


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i : i + CHUNK]


def classify(app: App, rule: Rule, on: date, aud: Audience, sent: list[Notice]) -> ChangeSet:
    """Compare the rule's notices on `on` (households.notices: one per resident, household or
    contact, with its amount in fen) with those of the last completed run."""
    amounts = {n.resident_id: n.amount for n in sent}
    with app.reader.connect() as conn:
        base = baseline_run(conn, rule.id)
        before = eligible_in(conn, base) if base is not None else {}
        out = ChangeSet(base)
        now = {n.resident_id: n.member for n in sent}
        for rid, m in now.items():
            out.eligible[rid] = amounts.get(rid)
            if base is None or rid not in before:
                out.members["joined"].append(m)
            elif before[rid] != amounts.get(rid):
                out.members["changed"].append(m)
            else:
                out.unchanged += 1
        if base is None:
            return out
        out.members["left"], kept = _left(conn, app, rule, aud, [r for r in before if r not in now], out)
        for rid in kept:
            out.eligible[rid] = before[rid]
    return out


def _left(
    conn: sa.Connection, app: App, rule: Rule, aud: Audience, candidates: Iterable[str], out: ChangeSet
) -> tuple[list[Member], list[str]]:
    """Of the formerly eligible the rule no longer matches: those it now decides against (to be
    told, on the rule's channels), and those it cannot decide (kept eligible, not told)."""
    t = app.residents
    left: list[Member] = []
    kept: list[str] = []
    ids = sorted(candidates)
    found: set[str] = set()
    code = result_code(aud.compiled)
    for chunk in _chunks(ids):
        rows = conn.execute(
            sa.select(*contact_columns(t), code.label("code"), t.c.left_at).where(t.c.resident_id.in_(chunk))
        ).all()
        for row in rows:
            found.add(row.resident_id)
            if row.left_at is not None:
                out.gone += 1
            elif row.code == FAIL:
                rid, preferred, phone, kind, email, address, opted = row[: len(CONTACTS)]
                left.append(
                    Member(
                        rid,
                        *choose_channel(rule.channels, preferred, phone, kind, email, address, bool(opted)),
                    )
                )
            else:  # undecided now (or matched since the scan): still eligible, nobody told
                kept.append(row.resident_id)
                out.undecided += 1
    out.gone += len(ids) - len(found)  # no longer in the register at all
    return left, kept


def store_eligible(conn: sa.Connection, run_id: int, eligible: dict[str, int | None]) -> None:
    rows = [{"run_id": run_id, "resident_id": rid, "amount": a} for rid, a in eligible.items()]
    executemany(conn, run_eligible.insert(), rows)
