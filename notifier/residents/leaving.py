"""Residents who leave the register's care: deceased, moved away, or struck off for another reason.

From the moment a resident is marked as having left, no notice reaches them: their pending
deliveries in every run are skipped at once (each audited, their notice keys released), no new
run or preview counts them, and the retention clock of their data starts (`left_at`). The row
stays, so audit history and coverage still name them. A mistake is undone with `reactivate`.
Both are audit events under the acting account, with the reason given.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from ..actors import actor_name
from ..app import App
from ..audit import log as audit
from ..clock import utcnow
from ..delivery.complete import complete_runs
from ..delivery.transitions import skip_pending
from ..errors import InputError, NotFound
from ..storage.schema import deliveries

LEFT_REASON = "resident left"
"""How skipped deliveries' reasons begin (audit coverage counts them as `left`)."""


class LeftAs(StrEnum):
    DECEASED = "deceased"
    MOVED = "moved"
    OTHER = "other"


ACTIVE = "active"
"""The 状态 column's value for a resident in care (fields.BUILTIN_FIELDS `status`)."""


def deactivate(app: App, ids: Sequence[str], *, reason: str, left_as: LeftAs, by: str) -> dict[str, Any]:
    """Mark these residents as having left; skip their pending deliveries. Residents who had
    already left are reported, not changed."""
    by = actor_name(by)
    reason = reason.strip()
    if not reason:
        raise InputError("--reason is required: why the resident no longer receives notices (audited)")
    t = app.residents
    wanted = sorted(set(ids))
    with app.engine.begin() as conn:
        rows = conn.execute(sa.select(t.c.resident_id).where(t.c.resident_id.in_(wanted))).all()
        _all_known(wanted, rows)
        leaving, skipped, run_ids = mark_left(conn, app, wanted, left_as, reason, by, utcnow())
    return {
        "left": leaving,
        "already_left": sorted(set(wanted) - set(leaving)),
        "as": left_as.value,
        "deliveries_skipped": len(skipped),
        "runs": run_ids,
    }


def mark_left(
    conn: sa.Connection,
    app: App,
    ids: Sequence[str],
    left_as: LeftAs,
    reason: str,
    by: str,
    now: datetime,
) -> tuple[list[str], list[int], list[int]]:
    """In the caller's transaction (a command, or a roster import's 状态 column): mark those of
    `ids` who had not left, skip their pending deliveries, complete runs left with nothing open.
    Returns (residents marked, deliveries skipped, runs concerned)."""
    t, d = app.residents, deliveries
    leaving = sorted(
        conn.execute(
            sa.select(t.c.resident_id).where(t.c.resident_id.in_(sorted(set(ids))), t.c.left_at.is_(None))
        ).scalars()
    )
    if not leaving:
        return [], [], []
    conn.execute(
        t.update()
        .where(t.c.resident_id.in_(leaving), t.c.left_at.is_(None))
        .values(left_at=now, left_as=left_as.value, left_reason=reason)
    )
    audit.append(
        conn,
        [
            audit.AuditEvent(by, "resident.left", f"resident:{rid}", {"as": left_as.value, "reason": reason})
            for rid in leaving
        ],
        now=now,
    )
    skipped = skip_pending(
        conn,
        [d.c.resident_id.in_(leaving)],
        actor=by,
        now=now,
        reason=f"{LEFT_REASON} ({left_as.value}): {reason}",
        why=LEFT_REASON,
    )
    run_ids = set(conn.execute(sa.select(d.c.run_id).where(d.c.id.in_(skipped))).scalars())
    complete_runs(conn, run_ids, now, by)
    return leaving, skipped, sorted(run_ids)


def reactivate(app: App, ids: Sequence[str], *, reason: str, by: str) -> dict[str, Any]:
    """Undo a mistaken `deactivate`: the residents receive notices of runs created from now on
    (deliveries skipped meanwhile stay skipped: a new run reaches them)."""
    by = actor_name(by)
    reason = reason.strip()
    if not reason:
        raise InputError("--reason is required: why the resident receives notices again (audited)")
    t = app.residents
    wanted = sorted(set(ids))
    now = utcnow()
    with app.engine.begin() as conn:
        rows = conn.execute(sa.select(t.c.resident_id, t.c.left_at).where(t.c.resident_id.in_(wanted))).all()
        _all_known(wanted, rows)
        back = sorted(r.resident_id for r in rows if r.left_at is not None)
        conn.execute(
            t.update().where(t.c.resident_id.in_(back)).values(left_at=None, left_as=None, left_reason=None)
        )
        audit.append(
            conn,
            [
                audit.AuditEvent(by, "resident.returned", f"resident:{rid}", {"reason": reason})
                for rid in back
            ],
            now=now,
        )
    return {"returned": back, "not_left": sorted(set(wanted) - set(back))}


def _all_known(wanted: Sequence[str], rows: Sequence[Any]) -> None:
    unknown = sorted(set(wanted) - {r.resident_id for r in rows})
    if unknown:
        raise NotFound(
            f"no resident {', '.join(unknown[:10])} in the register" + (" …" if len(unknown) > 10 else "")
        )
