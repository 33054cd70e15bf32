"""The append-only, hash-chained audit log.

Each event's hash covers its own fields and the previous event's hash, so changing,
deleting, inserting or reordering any event breaks the chain from that point on. Appends
lock the single `audit_head` row in the same transaction as the state change they record:
concurrent writers queue on it, so the chain has no gaps and no forks.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..clock import as_utc, utcnow
from ..storage.bulk import executemany
from ..storage.schema import audit_events, audit_head

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEvent:
    actor: str
    action: str
    subject: str
    payload: dict[str, Any]


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def _ts_text(ts: datetime) -> str:
    return as_utc(ts).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(prev_hash: str, seq: int, ts: datetime, actor: str, action: str, subject: str, payload: str) -> str:
    body = canonical_json([seq, _ts_text(ts), actor, action, subject, payload, prev_hash])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def append(conn: sa.Connection, events: Iterable[AuditEvent], *, now: datetime | None = None) -> int:
    """Append events in order inside the caller's transaction; returns the new head sequence."""
    batch = list(events)
    head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash)
                        .where(audit_head.c.id == 1).with_for_update()).one()
    if not batch:
        return int(head.seq)
    ts = now or utcnow()
    seq, prev = int(head.seq), head.hash
    rows = []
    for ev in batch:
        seq += 1
        payload = canonical_json(ev.payload)
        h = event_hash(prev, seq, ts, ev.actor, ev.action, ev.subject, payload)
        rows.append({"seq": seq, "ts": ts, "actor": ev.actor, "action": ev.action, "subject": ev.subject,
                     "payload": payload, "prev_hash": prev, "hash": h})
        prev = h
    executemany(conn, audit_events.insert(), rows)
    conn.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=seq, hash=prev))
    return seq


def record(conn: sa.Connection, actor: str, action: str, subject: str, **payload: Any) -> int:
    return append(conn, [AuditEvent(actor, action, subject, payload)])


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events: int
    first_bad: int | None
    reason: str | None


def iter_events(conn: sa.Connection, batch: int = 5000) -> Iterator[sa.Row[Any]]:
    """Stream events in sequence order with keyset pagination (constant memory)."""
    last = 0
    while True:
        rows = conn.execute(sa.select(audit_events).where(audit_events.c.seq > last)
                            .order_by(audit_events.c.seq).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify(conn: sa.Connection) -> VerifyResult:
    """Recompute the chain from the start and compare with the stored head."""
    prev, expected_seq, count = GENESIS, 1, 0
    for row in iter_events(conn):
        if row.seq != expected_seq:
            return VerifyResult(False, count, expected_seq, f"event {expected_seq} is missing (next stored is {row.seq})")
        if row.prev_hash != prev:
            return VerifyResult(False, count, row.seq, "previous-hash link does not match the event before it")
        if event_hash(prev, row.seq, row.ts, row.actor, row.action, row.subject, row.payload) != row.hash:
            return VerifyResult(False, count, row.seq, "event content does not match its hash (changed)")
        prev, expected_seq, count = row.hash, expected_seq + 1, count + 1
    head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
    if head.seq != count or head.hash != prev:
        return VerifyResult(False, count, count + 1 if head.seq > count else head.seq,
                            f"chain head says {head.seq} events, {count} found")
    return VerifyResult(True, count, None, None)
