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
from typing import Any

import sqlalchemy as sa

from ..audit import log as audit
from ..errors import TransitionForbidden
from ..status import (
    ALLOWED_TRANSITIONS,
    RUN_TRANSITIONS,
    DeliveryStatus,
    RunStatus,
)
from ..storage.bulk import executemany
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
) -> list[int]:
    """Move the rows among `ids` (or all rows matching `where` when ids is None) that are still
    in a `from_` state to `to`, setting `values` (and `reason` when given); one audit event per
    moved row. Returns the moved ids."""
    sources = _sources(from_)
    for old in sources:
        check(old, to)
    d = deliveries
    sets: dict[str, Any] = {"status": to, "updated_at": now, **(values or {})}
    if reason is not None:
        sets["reason"] = reason
    chunks: Iterable[list[int] | None] = (
        [None] if ids is None else (list(ids)[i : i + CHUNK] for i in range(0, len(ids), CHUNK))
    )
    moved: list[int] = []
    events: list[audit.AuditEvent] = []
    for chunk in chunks:
        if chunk == []:
            continue
        for old in sources:  # one statement per source state, so each event names its true `from`
            stmt = d.update().where(d.c.status == old, *where)
            if chunk is not None:
                stmt = stmt.where(d.c.id.in_(chunk))
            rows = conn.execute(stmt.values(**sets).returning(d.c.id, d.c.run_id)).all()
            for r in sorted(rows):
                moved.append(r.id)
                events.append(_event(actor, r.id, r.run_id, old, to, reason, payload))
    audit.append(conn, events, now=now)
    return moved


@dataclass(frozen=True)
class Move:
    """One row's own target, values and audit detail, for moves that differ per row (the
    outcomes of a batch of sends; what reconciliation decided). `expect` holds column values
    the row must still have (e.g. the attempt count read earlier), or it is left alone."""

    id: int
    to: DeliveryStatus
    values: Mapping[str, Any] = field(default_factory=dict)
    payload: Mapping[str, Any] = field(default_factory=dict)
    reason: str | None = None
    expect: Mapping[str, Any] = field(default_factory=dict)


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
    transaction is the only writer), so the rows updated are exactly the rows found. Returns the
    moves applied and their audit events (already appended unless `audit_now` is False, for a
    caller that appends them with others in one go)."""
    sources = set(_sources(from_))
    for m in moves:
        for old in sources:
            check(old, m.to)
    if not moves:
        return [], []
    d = deliveries
    expect_cols = sorted({k for m in moves for k in m.expect})
    found: dict[int, Any] = {}
    ids = [m.id for m in moves]
    for i in range(0, len(ids), CHUNK):
        q = sa.select(d.c.id, d.c.run_id, d.c.status, *(d.c[k] for k in expect_cols)).where(
            d.c.id.in_(ids[i : i + CHUNK]), d.c.status.in_(sources), *where
        )
        if conn.dialect.name == "postgresql":
            q = q.with_for_update(of=d)
        found.update((r.id, r) for r in conn.execute(q))
    applied = [
        m for m in moves if m.id in found and all(getattr(found[m.id], k) == v for k, v in m.expect.items())
    ]
    keys = sorted({k for m in applied for k in m.values})
    if any(set(m.values) != set(keys) for m in applied):
        raise ValueError("move_each: every move must set the same columns")
    if applied:
        params: dict[str, Any] = {k: sa.bindparam(f"v_{k}") for k in keys}
        stmt = (
            d.update()
            .where(d.c.id == sa.bindparam("b_id"))
            .values(
                status=sa.bindparam("b_status"), reason=sa.bindparam("b_reason"), updated_at=now, **params
            )
        )
        rows = [
            {"b_id": m.id, "b_status": m.to.value, "b_reason": m.reason}
            | {f"v_{k}": m.values[k] for k in keys}
            for m in applied
        ]
        if all(m.reason is None for m in applied):  # keep the reason a row already has
            stmt = stmt.values(reason=d.c.reason)
            for r in rows:
                del r["b_reason"]
        executemany(conn, stmt, rows)
    events = [
        _event(actor, m.id, found[m.id].run_id, DeliveryStatus(found[m.id].status), m.to, m.reason, m.payload)
        for m in applied
    ]
    if audit_now:
        audit.append(conn, events, now=now)
    return applied, events


def _event(
    actor: str,
    delivery_id: int,
    run_id: int,
    old: DeliveryStatus,
    new: DeliveryStatus,
    reason: str | None,
    payload: Mapping[str, Any] | None,
) -> audit.AuditEvent:
    body: dict[str, Any] = {"run": run_id, "from": old.value, "to": new.value}
    if reason is not None:
        body["reason"] = reason
    return audit.AuditEvent(actor, "delivery.status", f"delivery:{delivery_id}", body | dict(payload or {}))


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
