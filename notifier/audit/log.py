"""The append-only, hash-chained audit log.

Each event's hash covers its own fields and the previous event's hash, so changing,
deleting, inserting or reordering any event breaks the chain from that point on. Appends
lock the single `audit_head` row in the same transaction as the state change they record:
concurrent writers queue on it, so the chain has no gaps and no forks.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..clock import as_utc, utcnow
from ..storage.bulk import executemany
from ..storage.db import read_only
from ..storage.schema import audit_events, audit_head

if TYPE_CHECKING:
    from .redact import Redactions

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEvent:
    actor: str
    action: str
    subject: str
    payload: dict[str, Any]


# One encoder, made once: json.dumps with these options builds a new JSONEncoder on every call.
# Same output as json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).
_encode = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode
_sha256 = hashlib.sha256


def canonical_json(obj: Any) -> str:
    return _encode(obj)


def ts_text(ts: datetime) -> str:
    return as_utc(ts).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def chain_hash(prev_hash: str, seq: int, ts: str, actor: str, action: str, subject: str, payload: str) -> str:
    """The one hash formula, over the time as text (callers that share a time format it once)."""
    return _sha256(_encode([seq, ts, actor, action, subject, payload, prev_hash]).encode("utf-8")).hexdigest()


def event_hash(
    prev_hash: str, seq: int, ts: datetime, actor: str, action: str, subject: str, payload: str
) -> str:
    return chain_hash(prev_hash, seq, ts_text(ts), actor, action, subject, payload)


def append(conn: sa.Connection, events: Iterable[AuditEvent], *, now: datetime | None = None) -> int:
    """Append events in order inside the caller's transaction; returns the new head sequence."""
    batch = list(events)
    head = conn.execute(
        sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
    ).one()
    if not batch:
        return int(head.seq)
    ts = now or utcnow()
    tstext = ts_text(ts)  # the whole batch shares its time
    seq, prev = int(head.seq), head.hash
    rows = []
    for ev in batch:
        seq += 1
        payload = _encode(ev.payload)
        h = chain_hash(prev, seq, tstext, ev.actor, ev.action, ev.subject, payload)
        rows.append(
            {
                "seq": seq,
                "ts": ts,
                "actor": ev.actor,
                "action": ev.action,
                "subject": ev.subject,
                "payload": payload,
                "prev_hash": prev,
                "hash": h,
            }
        )
        prev = h
    executemany(conn, audit_events.insert(), rows)
    conn.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=seq, hash=prev))
    return seq


def record(conn: sa.Connection, actor: str, action: str, subject: str, **payload: Any) -> int:
    return append(conn, [AuditEvent(actor, action, subject, payload)])


@dataclass(frozen=True)
class Checkpoint:
    """A chain head recorded outside the database: (seq, hash) at a time, from the checkpoint file.

    `sig` (base64) and `public_key` (hex) are set on a signed line; `line` is its line in the file."""

    seq: int
    hash: str
    at: str = ""
    sig: str = ""
    public_key: str = ""
    line: int = 0


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events: int  # events in good order (before the first bad one)
    first_bad: int | None
    reason: str | None
    kind: str | None = None  # changed | missing | inserted | reordered | rewritten
    head_seq: int = 0
    head_hash: str = GENESIS
    from_seq: int = 0  # verification started after this event (a trusted checkpoint)
    checkpoints_matched: int = 0
    problems: tuple[dict[str, Any], ...] = ()  # checkpoint file problems (kind "checkpoint_signature")

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "first_bad": self.first_bad,
            "kind": self.kind,
            "reason": self.reason,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "from_seq": self.from_seq,
            "checkpoints_matched": self.checkpoints_matched,
            "problems": list(self.problems),
        }


def iter_events(
    conn: sa.Connection, batch: int = 5000, *, after: int = 0, where: sa.ColumnElement[bool] | None = None
) -> Iterator[sa.Row[Any]]:
    """Stream events in sequence order with keyset pagination (constant memory)."""
    last = after
    while True:
        q = sa.select(audit_events).where(audit_events.c.seq > last)
        if where is not None:
            q = q.where(where)
        rows = conn.execute(q.order_by(audit_events.c.seq).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


_PAGE = 20_000
# SQLAlchemy's storage format for DateTime on SQLite; ASCII digits only.
_SQLITE_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}")


def _raw_pages(conn: sa.Connection, after: int, page: int | None = None) -> Iterator[Sequence[Any]]:
    """Events after `after` in sequence order as the driver's own tuples (keyset pages), read on the
    connection's DBAPI connection, so inside its transaction. The ts column comes as the driver gives
    it: text on SQLite, a datetime on PostgreSQL (see _ts_texts)."""
    page = page or _PAGE
    e = audit_events
    stmt = (
        sa.select(e.c.seq, e.c.ts, e.c.actor, e.c.action, e.c.subject, e.c.payload, e.c.prev_hash, e.c.hash)
        .where(e.c.seq > sa.bindparam("after"))
        .order_by(e.c.seq)
        .limit(page)
    )
    compiled = stmt.compile(dialect=conn.dialect)
    cur = conn.connection.cursor()
    try:
        while True:
            params = compiled.construct_params({"after": after})
            cur.execute(
                compiled.string,
                tuple(params[n] for n in compiled.positiontup or ()) if compiled.positional else params,
            )
            rows = cur.fetchall()
            if not rows:
                return
            yield rows
            after = rows[-1][0]
            if len(rows) < page:
                return
    finally:
        cur.close()


def _ts_texts(conn: sa.Connection) -> Any:
    """raw ts value -> ts_text(the datetime SQLAlchemy would have read), without building it when the
    value is SQLite's canonical text (checked to be a real date and time, as reading it would)."""
    proc = audit_events.c.ts.type.dialect_impl(conn.dialect).result_processor(conn.dialect, None)
    canonical, fromiso = _SQLITE_TS.fullmatch, datetime.fromisoformat
    last: list[Any] = [None, ""]

    def text(raw: Any) -> str:
        if raw == last[0] and type(raw) is type(last[0]):  # events appended together share their time
            return str(last[1])
        if type(raw) is str and canonical(raw):
            fromiso(raw)  # raises for an impossible date, as SQLAlchemy's reader does
            out = f"{raw[:10]}T{raw[11:]}Z"
        else:
            out = ts_text(proc(raw) if proc is not None else raw)  # type: ignore[arg-type]
        last[0], last[1] = raw, out
        return out

    return text


@contextmanager
def snapshot(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection that sees one consistent state of the log while it is read end to end.

    PostgreSQL: a REPEATABLE READ transaction (appends committed meanwhile stay invisible, so a
    half-read chain never looks broken). SQLite: a deferred transaction is a snapshot already, and
    it does not hold the write lock, so appends go on while an auditor verifies.
    """
    with read_only(engine).connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def read_head(conn: sa.Connection) -> tuple[int, str]:
    head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
    return int(head.seq), str(head.hash)


def _rehash(
    row: sa.Row[Any],
    *,
    seq: int | None = None,
    prev: str | None = None,
    content: sa.Row[Any] | None = None,
    payload: str | None = None,
) -> str:
    """The hash `row` would have at another position or with another row's content (for diagnosis)."""
    c = row if content is None else content
    return event_hash(
        row.prev_hash if prev is None else prev,
        row.seq if seq is None else seq,
        c.ts,
        c.actor,
        c.action,
        c.subject,
        c.payload if payload is None else payload,
    )


def _self_ok(row: sa.Row[Any]) -> bool:
    return bool(_rehash(row) == row.hash)


def _diagnose(
    conn: sa.Connection,
    row: sa.Row[Any],
    nxt: sa.Row[Any] | None,
    prev: str,
    prev_prev: str | None,
    trusted: int,
) -> tuple[int, str, str]:
    """Name what happened at the first event that breaks the chain: (first bad seq, kind, reason).

    `prev` is the hash of the last good event before `row`, `prev_prev` the one before that;
    events up to `trusted` match a checkpoint. Runs only once the chain is known to be broken,
    so it may scan ahead.
    """
    s = row.seq
    self_ok, link_ok = _self_ok(row), row.prev_hash == prev
    if link_ok:  # in place, but its content no longer hashes: changed, or swapped with a later event
        for other in iter_events(conn, after=s):
            if (
                _rehash(row, content=other) == row.hash
                and _rehash(other, content=row) == other.hash
                or _rehash(row, payload=other.payload) == row.hash
                and _rehash(other, payload=row.payload) == other.hash
            ):
                return s, "reordered", _swapped(s, other.seq)
        return s, "changed", f"event {s} was changed: its content does not match its hash"
    if (
        prev_prev is not None
        and row.prev_hash == prev_prev
        and (self_ok or _rehash(row, seq=s - 1) == row.hash)
    ):
        return (
            s - 1,
            "inserted",
            f"event {s - 1} was inserted: the event after it links to event {s - 2}, not to it",
        )
    if nxt is not None and nxt.prev_hash == prev and _rehash(row, seq=nxt.seq) != row.hash:
        return (
            s,
            "inserted",
            f"event {s} was inserted: it does not link to event {s - 1}, and event {nxt.seq} does",
        )
    if self_ok and s - 1 <= trusted:
        return (
            s,
            "changed",
            f"event {s} was changed and its hash recomputed: it no longer links to event {s - 1}",
        )
    if self_ok:
        return (
            s - 1,
            "changed",
            (
                f"event {s - 1} was changed and its hash recomputed: event {s} recorded a "
                f"different hash for it"
            ),
        )
    for other in iter_events(conn, after=s):
        if other.prev_hash == prev and _rehash(row, seq=other.seq) == row.hash:
            return s, "reordered", _swapped(s, other.seq)
    if _rehash(row, seq=s + 1) == row.hash:
        return (
            s,
            "missing",
            f"event {s} was deleted and the later events renumbered: event {s} was recorded as {s + 1}",
        )
    return (
        s,
        "changed",
        f"event {s} was changed: it does not match its hash and does not link to event {s - 1}",
    )


def _redactions(conn: sa.Connection, after: int) -> Redactions:
    """The ranges of events redacted by migration 0015 (audit/redact.py) after event `after`."""
    from .redact import Redactions

    return Redactions(conn, after)


def _swapped(a: int, b: int) -> str:
    return f"events {a} and {b} were swapped: event {a} holds what was recorded as event {b}"


def verify(
    conn: sa.Connection, checkpoints: Iterable[Checkpoint] = (), *, start: Checkpoint | None = None
) -> VerifyResult:
    """Recompute the chain, compare it with the stored head and every checkpoint; name the first bad event.

    A chain rewritten wholesale (every hash recomputed) verifies internally; only a checkpoint kept
    outside the database shows it. Such a rewrite is located to the events after the last checkpoint
    that still matches. `start`, a checkpoint verified earlier, skips the events up to it: the stored
    event there must still carry the checkpoint's hash. Call inside one snapshot (a single transaction,
    REPEATABLE READ on PostgreSQL) so concurrent appends cannot look like tampering.
    """
    head_seq, head_hash = read_head(conn)
    marks: dict[int, list[Checkpoint]] = {}
    for cp in checkpoints:
        if cp.seq > 0:
            marks.setdefault(cp.seq, []).append(cp)
    good_mark, matched, prev_prev = 0, 0, None
    prev, count = GENESIS, 0

    def bad(first: int, kind: str, reason: str) -> VerifyResult:
        return VerifyResult(
            False, first - 1, first, reason, kind, head_seq, head_hash, start.seq if start else 0, matched
        )

    if start is not None and start.seq > 0:
        at = conn.execute(sa.select(audit_events).where(audit_events.c.seq == start.seq)).one_or_none()
        same = marks.get(start.seq, [start])
        if at is None or not _self_ok(at) or any(cp.hash != at.hash for cp in same):
            return verify(
                conn, [cp for cps in marks.values() for cp in cps]
            )  # the trusted point itself is gone: the full check says where
        prev, count, good_mark, matched = start.hash, start.seq, start.seq, len(same)
    # Fast pass over the driver's rows while every event is in place, links and hashes right; the
    # first one that does not (and every checkpoint mismatch) goes to the loop below, which reads
    # from there through iter_events and names what happened.
    text = _ts_texts(conn)
    stopped = False
    red = _redactions(conn, count)
    if red.straddled:  # a redaction range reaches back before `start`: only a full check covers it
        return verify(conn, [cp for cps in marks.values() for cp in cps])
    for page in _raw_pages(conn, count):
        for seq, ts, actor, action, subject, payload, prev_hash, h in page:
            if seq != count + 1 or prev_hash != prev:
                stopped = True
                break
            got = chain_hash(prev_hash, seq, text(ts), actor, action, subject, payload)
            if got != h and not red.accept(seq, h, got):
                stopped = True
                break
            why = red.close(seq)
            if why is not None:
                return bad(seq, "changed", why)
            if seq in marks:
                cps = marks[seq]
                if any(cp.hash != h for cp in cps):
                    stopped = True
                    break
                good_mark, matched = seq, matched + len(cps)
            prev_prev, prev, count = prev, h, seq
        if stopped:
            break
    rows = iter_events(conn, after=count)
    row = next(rows, None)
    while row is not None:
        nxt = next(rows, None)
        expected = count + 1
        if row.seq != expected:
            gap = f"event {expected}" if row.seq == expected + 1 else f"events {expected}..{row.seq - 1}"
            return bad(
                expected,
                "missing",
                f"{gap} {'is' if row.seq == expected + 1 else 'are'} missing "
                f"(the next stored event is {row.seq})",
            )
        if row.prev_hash != prev or not (_self_ok(row) or red.accept(row.seq, row.hash, _rehash(row))):
            return bad(*_diagnose(conn, row, nxt, prev, prev_prev, good_mark))
        why = red.close(row.seq)
        if why is not None:
            return bad(row.seq, "changed", why)
        for cp in marks.get(row.seq, ()):
            if cp.hash != row.hash:
                return bad(
                    good_mark + 1,
                    "rewritten",
                    (
                        f"the chain was rewritten after event {good_mark}: "
                        f"the checkpoint taken {cp.at or '(no time)'} "
                        f"recorded event {cp.seq} with hash {cp.hash[:16]}…, the log now has {row.hash[:16]}…"
                    ),
                )
            good_mark, matched = row.seq, matched + 1
        prev_prev, prev, count = prev, row.hash, expected
        row = nxt
    beyond = [cp for cps in marks.values() for cp in cps if cp.seq > count]
    if beyond:
        cp = min(beyond, key=lambda c: c.seq)
        return bad(
            count + 1,
            "missing",
            f"the checkpoint taken {cp.at or '(no time)'} recorded {cp.seq} events; "
            f"the log ends at event {count}",
        )
    if head_seq > count:
        return bad(
            count + 1, "missing", f"the chain head says {head_seq} events; the log ends at event {count}"
        )
    if head_seq < count:
        return bad(
            head_seq + 1, "inserted", f"events {head_seq + 1}..{count} were added after the chain head"
        )
    if head_hash != prev:
        return bad(
            count,
            "changed",
            f"event {count} was changed and its hash recomputed: the chain head has another hash",
        )
    return VerifyResult(
        True, count, None, None, None, head_seq, head_hash, start.seq if start else 0, matched
    )
