"""The one place a delivery's or a run's status changes.

Every change is checked against the transition table (status.py) before any SQL runs, applied
only to rows still in the expected source state, and audited for exactly the rows it moved:
the ids come back from the UPDATE itself (`RETURNING`), or from rows locked before an
executemany, never from an earlier read. So two processes racing for the same rows (a cancel
and a dispatcher, two reconcilers, a receipt and a send's answer) each audit only what they
changed, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa

from ..audit import log as audit
from ..errors import TransitionForbidden
from ..masking import mask_text
from ..status import (
    ALLOWED_TRANSITIONS,
    RUN_TRANSITIONS,
    DeliveryStatus,
    RunStatus,
)
from ..storage.bulk import executemany
from ..storage.records import records
from ..storage.schema import deliveries, runs

CHUNK = 900
"""Ids per statement: far below SQLite's and PostgreSQL's limits on bound parameters."""


def _sources(from_: DeliveryStatus | Collection[DeliveryStatus]) -> list[DeliveryStatus]:
    return [from_] if isinstance(from_, DeliveryStatus) else list(from_)


def check(old: DeliveryStatus, new: DeliveryStatus) -> None:
    """Raise TransitionForbidden unless the table allows old -> new (not an assert: it holds under -O)."""
    if new not in ALLOWED_TRANSITIONS[old]:
        raise TransitionForbidden(f"a delivery cannot move from {old.value} to {new.value}")


def move(
    conn: sa.Connection,
    ids: Collection[int] | None,
    *,
    from_: DeliveryStatus | Collection[DeliveryStatus],
    to: DeliveryStatus,
    actor: str,
    now: datetime,
    reason: str | None = None,
    values: Mapping[str, Any] | None = None,
    where: Sequence[sa.ColumnElement[bool]] = (),
    payload: Mapping[str, Any] | None = None,
    per_row: Mapping[int, Mapping[str, Any]] | None = None,
) -> list[int]:
    """Move the rows among `ids` (or all rows matching `where` when ids is None) that are still
    in a `from_` state to `to`, setting `values` (and `reason` when given); one audit event per
    moved row, with `payload` and the row's own `per_row` detail. Returns the moved ids."""
    sources = _sources(from_)
    _check_all(sources, [to])
    payload = payload or {}
    d = deliveries
    sets: dict[str, Any] = {"status": to, "updated_at": now, **(values or {})}
    if reason is not None:
        sets["reason"] = reason
    moved: list[int] = []
    events: list[audit.AuditEvent] = []
    for chunk in _chunks(ids):
        for old in sources:  # one statement per source state, so each event names its true `from`
            stmt = d.update().where(d.c.status == old, *where)
            if chunk is not None:
                stmt = stmt.where(_ids_in(chunk))
            rows = conn.execute(stmt.values(**sets).returning(d.c.id, d.c.run_id)).tuples().all()
            old_value, to_value = old.value, to.value
            for row_id, run_id in sorted(map(tuple, rows)):
                moved.append(row_id)
                extra = per_row.get(row_id) if per_row else None
                detail = {**payload, **extra} if extra else payload
                events.append(_event(actor, row_id, run_id, old_value, to_value, reason, detail))
    audit.append(conn, events, now=now)
    return moved


def _ids_in(ids: list[int]) -> sa.ColumnElement[bool]:
    """`deliveries.id IN (...)` with the ids bound as one list: `in_(ids)` coerces every id in
    Python (~0.3 µs each here), and the dispatcher moves every message at least twice."""
    return deliveries.c.id.in_(sa.bindparam("ids", ids, expanding=True, unique=True))


def _chunks(ids: Collection[int] | None) -> Iterable[list[int] | None]:
    """`ids` in statements of at most CHUNK (or one unrestricted statement for None)."""
    if ids is None:
        return [None]
    listed = list(ids)
    return [listed[i : i + CHUNK] for i in range(0, len(listed), CHUNK)]


_NOTHING: Mapping[str, Any] = MappingProxyType({})
"""An empty mapping shared by every Move that leaves a field out (read-only, so it can be)."""


@dataclass(frozen=True)
class Move:
    """One row's own target, values and audit detail, for moves that differ per row (the
    outcomes of a batch of sends; what reconciliation decided). `expect` holds column values
    the row must still have (e.g. the attempt count read earlier), or it is left alone."""

    id: int
    to: DeliveryStatus
    values: Mapping[str, Any] = field(default_factory=lambda: _NOTHING)
    payload: Mapping[str, Any] = field(default_factory=lambda: _NOTHING)
    reason: str | None = None
    expect: Mapping[str, Any] = field(default_factory=lambda: _NOTHING)


def skip_pending(
    conn: sa.Connection,
    where: Sequence[sa.ColumnElement[bool]],
    *,
    actor: str,
    now: datetime,
    reason: str,
    why: str,
    ids: Collection[int] | None = None,
) -> list[int]:
    """Skip the pending deliveries matching `where` (and among `ids` when given: a cancelled
    run, a resident who left, a row a gate stops): each audited with `why`, `reason` stored, and
    its notice key released so a later run may send that notice. Returns the skipped ids."""
    return move(
        conn,
        ids,
        from_=DeliveryStatus.PENDING,
        to=DeliveryStatus.SKIPPED,
        actor=actor,
        now=now,
        reason=reason,
        values={"notice_key": None},
        where=where,
        payload={"reason": why},
    )


def move_each(
    conn: sa.Connection,
    moves: Sequence[Move],
    *,
    from_: DeliveryStatus | Collection[DeliveryStatus],
    actor: str,
    now: datetime,
    where: Sequence[sa.ColumnElement[bool]] = (),
    audit_now: bool = True,
) -> tuple[list[Move], list[audit.AuditEvent]]:
    """Apply per-row moves to the rows still in a `from_` state (and matching `where` and each
    move's `expect`). The rows are locked first (PostgreSQL `FOR UPDATE`; a SQLite write
    transaction is the only writer), so the rows updated are exactly the rows found. Moves may
    set different columns (one executemany per set). Returns the moves applied and their audit
    events (already appended unless `audit_now` is False, for a caller that appends them with
    others in one go)."""
    sources = set(_sources(from_))
    _check_all(sources, {m.to for m in moves})
    if not moves:
        return [], []
    found = _lock(conn, moves, sources, where)
    applied = [m for m in moves if m.id in found and (not m.expect or _holds(found[m.id], m.expect))]
    by_columns: dict[tuple[str, ...], list[Move]] = {}
    for m in applied:
        by_columns.setdefault(tuple(m.values), []).append(m)
    for keys, group in by_columns.items():
        _apply(conn, group, keys, now)
    events = [
        _event(actor, m.id, found[m.id].run_id, found[m.id].status, m.to, m.reason, m.payload)
        for m in applied
    ]
    if audit_now:
        audit.append(conn, events, now=now)
    return applied, events


def _check_all(sources: Collection[DeliveryStatus], targets: Collection[DeliveryStatus]) -> None:
    for new in targets:
        for old in sources:
            check(old, new)


def _lock(
    conn: sa.Connection,
    moves: Sequence[Move],
    sources: set[DeliveryStatus],
    where: Sequence[sa.ColumnElement[bool]],
) -> dict[int, Any]:
    """The rows of `moves` still in a source state, locked, with the columns moves expect."""
    d = deliveries
    base = {"id", "run_id", "status"}
    extra = sorted({k for m in moves for k in m.expect} - base)
    ids = [m.id for m in moves]
    found: dict[int, Any] = {}
    for chunk in _chunks(ids):
        q = sa.select(d.c.id, d.c.run_id, d.c.status, *(d.c[k] for k in extra)).where(
            _ids_in(chunk or []), d.c.status.in_(sources), *where
        )
        if conn.dialect.name == "postgresql":
            q = q.with_for_update(of=d)
        found.update((r.id, r) for r in records(conn.execute(q)))
    return found


def _holds(row: Any, expect: Mapping[str, Any]) -> bool:
    return all(getattr(row, k) == v for k, v in expect.items())


def _apply(conn: sa.Connection, moves: list[Move], keys: tuple[str, ...], now: datetime) -> None:
    """One executemany for moves that set the same columns. `reason` is set from the moves
    unless they set it in `values` or none has one (then the row keeps the reason it has)."""
    d = deliveries
    sets: dict[str, Any] = {"status": sa.bindparam("b_status"), "updated_at": now}
    sets |= {k: sa.bindparam(f"v_{k}") for k in keys}
    with_reason = "reason" not in keys and any(m.reason is not None for m in moves)
    if with_reason:
        sets["reason"] = sa.bindparam("b_reason")
    names = [(f"v_{k}", k) for k in keys]
    rows = []
    for m in moves:
        row: dict[str, Any] = {"b_id": m.id, "b_status": m.to}  # a StrEnum: stored as its value
        for name, k in names:
            row[name] = m.values[k]
        if with_reason:
            row["b_reason"] = m.reason
        rows.append(row)
    executemany(conn, d.update().where(d.c.id == sa.bindparam("b_id")).values(**sets), rows)


def _event(
    actor: str,
    delivery_id: int,
    run_id: int,
    old: str,
    new: str,
    reason: str | None,
    payload: Mapping[str, Any] | None,
) -> audit.AuditEvent:
    """`delivery.status` for one moved row (`old`, `new`: status values); `payload` adds to it."""
    body: dict[str, Any] = {"run": run_id, "from": old, "to": new}
    if reason is not None:
        body["reason"] = mask_text(reason)  # a carrier's words may quote the number
    if payload:
        body.update(payload)
    return audit.AuditEvent(actor, "delivery.status", f"delivery:{delivery_id}", body)


# -- runs ------------------------------------------------------------------------------------

RUN_EVENTS: dict[tuple[RunStatus, RunStatus], str] = {
    (RunStatus.AWAITING_APPROVAL, RunStatus.APPROVED): "run.approved",
    (RunStatus.AWAITING_APPROVAL, RunStatus.CANCELLED): "run.cancelled",
    (RunStatus.APPROVED, RunStatus.CANCELLED): "run.cancelled",
    (RunStatus.APPROVED, RunStatus.COMPLETED): "run.completed",
    (RunStatus.COMPLETED, RunStatus.APPROVED): "run.reopened",
}
"""The audit action of each run transition."""


def move_run(
    conn: sa.Connection,
    run_ids: Collection[int],
    *,
    from_: RunStatus,
    to: RunStatus,
    actor: str,
    now: datetime,
    values: Mapping[str, Any] | None = None,
    payload: Mapping[str, Any] | None = None,
    audit_event: bool = True,
) -> list[int]:
    """Move the runs still `from_` to `to` (the run table in status.py), audited per run moved
    unless the caller records a richer event itself (`audit_event=False`). Returns the moved ids."""
    if to not in RUN_TRANSITIONS[from_]:
        raise TransitionForbidden(f"a run cannot move from {from_.value} to {to.value}")
    if not run_ids:
        return []
    r = runs
    stmt = (
        r.update().where(r.c.id.in_(list(run_ids)), r.c.status == from_).values(status=to, **(values or {}))
    )
    moved = sorted(conn.execute(stmt.returning(r.c.id)).scalars())
    if audit_event:
        action = RUN_EVENTS[(from_, to)]
        audit.append(
            conn, [audit.AuditEvent(actor, action, f"run:{i}", dict(payload or {})) for i in moved], now=now
        )
    return moved
