"""Completion: an approved run with no open delivery left becomes `completed` (audited).

`unknown` counts as open: reconciliation (or a person, resolve.py) may still find it was never
sent and send it again. Called after every stage that settles deliveries, in its transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa

from ..audit import log as audit
from ..status import DeliveryStatus as S
from ..status import RunStatus
from ..storage.schema import deliveries
from .transitions import move_run

OPEN = (S.PENDING, S.SENDING, S.UNKNOWN)


def complete_runs(conn: sa.Connection, run_ids: Iterable[int], now: datetime, actor: str) -> list[int]:
    """Complete the approved runs among these with nothing open; returns the runs completed."""
    d = deliveries
    ids = set(run_ids)
    if not ids:
        return []
    busy = set(
        conn.execute(
            sa.select(d.c.run_id).where(d.c.run_id.in_(ids), d.c.status.in_(OPEN)).distinct()
        ).scalars()
    )
    done = move_run(
        conn,
        sorted(ids - busy),
        from_=RunStatus.APPROVED,
        to=RunStatus.COMPLETED,
        actor=actor,
        now=now,
        values={"completed_at": now},
        audit_event=False,
    )
    # Stamped by the audit log's own clock, as always: `now` is the dispatcher's clock, which
    # `send` and tests may pin to the day the deliveries are dated.
    audit.append(conn, [audit.AuditEvent(actor, "run.completed", f"run:{i}", {}) for i in done])
    return done


def reopen_runs(
    conn: sa.Connection, run_ids: Iterable[int], now: datetime, actor: str, reason: str
) -> list[int]:
    """Completed runs that have something to send again (a fallback, a retry) go back to
    approved, audited as `run.reopened` with `reason`; returns the runs reopened."""
    return move_run(
        conn,
        sorted(set(run_ids)),
        from_=RunStatus.COMPLETED,
        to=RunStatus.APPROVED,
        actor=actor,
        now=now,
        values={"completed_at": None},
        payload={"from": "completed", "to": "approved", "reason": reason},
    )
