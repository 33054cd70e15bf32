"""Who is written to: one notice per resident, per household, or per contact (`notify:`).

Rules match residents; `notify: household` then sends one notice per household (fields.yaml's
`household_id`), addressed to its head (`is_head`) or, when the register names none, to its first
member by resident id, even if the head is not matched themselves (the head answers for the
household). `notify: contact` sends one notice per phone, e-mail or address, so a family sharing a
phone, even registered as several households, gets one message. A notice's amount is the sum of
the residents it stands for. Residents without a household are their own household.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .app import App
from .audience import CONTACTS, Audience, Member, choose_channel
from .storage.schema import opt_outs

CHUNK = 10_000  # households per query (SQLite takes up to 32,766 bound values)


@dataclass(frozen=True)
class Place:
    """Where a resident lives: their village (totals by village) and household (notify: household)."""

    village: str | None
    household: str | None


def places(app: App, ids: list[str]) -> dict[str, Place]:
    """The village and household of each resident, by primary key CHUNK at a time: read only for
    the rule a preview or run concerns, not in the scan that evaluates every rule."""
    t = app.residents
    household = t.c.f_household_id if "f_household_id" in t.c else sa.null()
    out: dict[str, Place] = {}
    with app.reader.connect() as conn:
        for i in range(0, len(ids), CHUNK):
            query = sa.select(t.c.resident_id, t.c.village, household).where(
                t.c.resident_id.in_(ids[i : i + CHUNK])
            )
            out.update((rid, Place(village, house)) for rid, village, house in conn.execute(query))
    return out


@dataclass(frozen=True)
class Notice:
    """One notice: who it is addressed to, the residents it stands for, the amount (fen) it states."""

    member: Member
    covers: tuple[str, ...]
    amount: int | None

    @property
    def resident_id(self) -> str:
        return self.member.resident_id


def _total(amounts: dict[str, int | None], ids: tuple[str, ...], has_amount: bool) -> int | None:
    if not has_amount:
        return None
    values = [amounts.get(i) for i in ids]
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def notices(app: App, aud: Audience) -> list[Notice]:
    """The audience's notices under its rule's `notify:` (resident by default)."""
    rule = aud.compiled.rule
    has_amount = rule.amount is not None
    if rule.notify == "household":
        return list(_households(app, aud, has_amount))
    if rule.notify == "contact":
        groups: dict[tuple[str, str], list[Member]] = defaultdict(list)
        alone: list[Member] = []
        for m in aud.members:
            if m.channel is None or m.recipient is None:
                alone.append(m)
            else:
                groups[(m.channel.value, m.recipient)].append(m)
        out = [Notice(m, (m.resident_id,), _total(aud.amounts, (m.resident_id,), has_amount)) for m in alone]
        for same in groups.values():
            ids = tuple(sorted(m.resident_id for m in same))
            first = min(same, key=lambda m: m.resident_id)
            out.append(Notice(first, ids, _total(aud.amounts, ids, has_amount)))
        return sorted(out, key=lambda n: n.resident_id)
    return [
        Notice(m, (m.resident_id,), _total(aud.amounts, (m.resident_id,), has_amount)) for m in aud.members
    ]


def _households(app: App, aud: Audience, has_amount: bool) -> Iterator[Notice]:
    members: dict[str, list[Member]] = defaultdict(list)
    where = places(app, [m.resident_id for m in aud.members])
    for m in aud.members:
        household = where[m.resident_id].household if m.resident_id in where else None
        members[household or f"\x00{m.resident_id}"].append(m)
    heads = _heads(app, [h for h in members if not h.startswith("\x00")])
    channels = aud.compiled.rule.channels
    for household, same in sorted(members.items(), key=lambda kv: min(m.resident_id for m in kv[1])):
        ids = tuple(sorted(m.resident_id for m in same))
        head = heads.get(household)
        if head is None:
            addressee = min(same, key=lambda m: m.resident_id)
        else:
            rid, preferred, phone, kind, email, address, opted = head
            addressee = Member(
                rid, *choose_channel(channels, preferred, phone, kind, email, address, bool(opted))
            )
        yield Notice(addressee, ids, _total(aud.amounts, ids, has_amount))


def _heads(app: App, households: list[str]) -> dict[str, tuple[Any, ...]]:
    """Each household's head in the register (is_head first, then the lowest resident id), with
    contacts: the members of those households, IN (...) CHUNK households at a time."""
    t = app.residents
    if not households or "f_household_id" not in t.c:
        return {}
    household = t.c.f_household_id
    head = t.c.f_is_head if "f_is_head" in t.c else sa.null()
    opted = sa.exists().where(opt_outs.c.phone == t.c.phone)
    out: dict[str, tuple[Any, ...]] = {}
    best: dict[str, tuple[bool, str]] = {}
    with app.reader.connect() as conn:
        for i in range(0, len(households), CHUNK):
            query = sa.select(household, head, *(t.c[n] for n in CONTACTS[:-1]), opted).where(
                household.in_(households[i : i + CHUNK]), t.c.left_at.is_(None)
            )
            for row in conn.execute(query):
                key = (not row[1], str(row[2]))  # heads first, then by resident id
                if row[0] not in best or key < best[row[0]]:
                    best[row[0]] = key
                    out[row[0]] = tuple(row[2:])
    return out
