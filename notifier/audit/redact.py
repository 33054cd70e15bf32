"""Redacting events written before audit pseudonyms (migration 0015), without breaking the chain.

Events older than audit/pseudonyms.py may hold a phone number in their subject (`phone:+86…` of
an opt-out) or in text a provider sent (a receipt's `raw`). Their hashes cover that text, so it
cannot simply be changed. Instead each such event gets its masked form (pseudonyms.scrub on the
subject's value and on the payload) and keeps its stored hash and link; an `audit.redacted` event
appended in the same transaction records, for up to 1000 redacted events, their range, count and a
digest of every `seq:original hash:hash of the redacted content`. `audit verify` (Redactions)
accepts an event in such a range whose content no longer matches its stored hash, and checks the
running digest when it reaches the record: changing a redacted event, passing a changed event off
as redacted, or changing the record (chained like every event) is still detected.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..masking import mask_text
from ..storage.schema import audit_events
from . import log as audit
from .pseudonyms import scrub

ACTION = "audit.redacted"
ACTOR = "system:migration"
PER_EVENT = 1000  # redactions recorded per audit.redacted event


def redacted(subject: str, payload: str) -> tuple[str, str] | None:
    """(subject, payload) with personal data masked, or None when the event holds none."""
    kind, colon, rest = subject.partition(":")
    new_subject = f"{kind}{colon}{scrub(rest)}" if colon else scrub(subject)
    new_payload = payload
    if mask_text(payload) != payload:  # cheap test on the text first: most events hold nothing
        try:
            new_payload = audit.canonical_json(scrub(json.loads(payload)))
        except ValueError:
            new_payload = mask_text(payload)
    if new_subject == subject and new_payload == payload:
        return None
    return new_subject, new_payload


@dataclass
class _Range:
    first: int
    last: int
    events: int
    digest: str
    at: int  # the audit.redacted event recording it
    count: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)


def _line(seq: int, original: str, now: str) -> bytes:
    return f"{seq}:{original}:{now}\n".encode("ascii")


class Redactions:
    """What `audit verify` knows of redacted events, in constant memory: the ranges the
    `audit.redacted` events cover. An event in a range whose content does not match its stored
    hash is accepted for now and its (seq, stored hash, hash of its content) goes into the range's
    running digest; reaching the range's own audit.redacted event, the digest and count must be
    the recorded ones, or some redacted event was changed (or an event changed and passed off as
    redacted)."""

    def __init__(self, conn: sa.Connection, after: int = 0) -> None:
        e = audit_events
        self.ranges: list[_Range] = []
        self.straddled = False  # a range begins at or before `after` and is recorded after it
        rows = conn.execute(sa.select(e.c.seq, e.c.payload).where(e.c.action == ACTION).order_by(e.c.seq))
        for seq, payload in rows:
            try:
                p = json.loads(payload)
                r = _Range(int(p["first"]), int(p["last"]), int(p["events"]), str(p["digest"]), int(seq))
            except (ValueError, KeyError, TypeError):
                continue  # not a redaction record this code wrote: it vouches for nothing
            if r.last >= r.at:
                continue  # a record written before the events it names: not one redact_all wrote
            if r.first > after:
                self.ranges.append(r)
            elif r.at > after:
                self.straddled = True
        self.ranges.sort(key=lambda r: r.first)
        self._starts = [r.first for r in self.ranges]
        self._at = {r.at: r for r in self.ranges}

    def accept(self, seq: int, stored: str, got: str) -> bool:
        """True if the event at `seq` may be a redacted one (its range is checked later)."""
        i = bisect.bisect_right(self._starts, seq) - 1
        if i < 0 or seq > self.ranges[i].last:
            return False
        r = self.ranges[i]
        r.count += 1
        r.hasher.update(_line(seq, stored, got))
        return True

    def close(self, seq: int) -> str | None:
        """At event `seq`: why the redactions it records do not match, or None."""
        r = self._at.get(seq)
        if r is None or (r.count == r.events and r.hasher.hexdigest() == r.digest):
            return None
        return (
            f"events {r.first}..{r.last} were changed after their redaction: they do not match what "
            f"event {seq} recorded ({r.count} of {r.events} redacted events found as redacted)"
        )


def _candidates(conn: sa.Connection, batch: int = 5000) -> Iterator[list[sa.Row[Any]]]:
    last = 0
    while True:
        rows = conn.execute(
            sa.select(audit_events)
            .where(audit_events.c.seq > last, audit_events.c.action != ACTION)
            .order_by(audit_events.c.seq)
            .limit(batch)
        ).all()
        if not rows:
            return
        yield list(rows)
        last = rows[-1].seq


def redact_all(conn: sa.Connection, now: datetime) -> int:
    """Redact every event holding personal data (the caller lifted the append-only guard on
    UPDATE for this transaction); returns how many were redacted."""
    done: list[list[Any]] = []
    for rows in _candidates(conn):
        for r in rows:
            change = redacted(r.subject, r.payload)
            if change is None:
                continue
            subject, payload = change
            new_hash = audit.event_hash(r.prev_hash, r.seq, r.ts, r.actor, r.action, subject, payload)
            conn.execute(
                audit_events.update()
                .where(audit_events.c.seq == r.seq)
                .values(subject=subject, payload=payload)
            )
            done.append([int(r.seq), r.hash, new_hash])
    for i in range(0, len(done), PER_EVENT):
        chunk = done[i : i + PER_EVENT]
        digest = hashlib.sha256(b"".join(_line(*x) for x in chunk)).hexdigest()
        record = {"first": chunk[0][0], "last": chunk[-1][0], "events": len(chunk), "digest": digest}
        audit.append(
            conn,
            [audit.AuditEvent(ACTOR, ACTION, "audit", {"reason": "personal data masked", **record})],
            now=now,
        )
    return len(done)
