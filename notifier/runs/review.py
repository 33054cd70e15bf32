"""A run's state after creation: approval level by level, and cancellation.

Both change statuses only through delivery/transitions.py, so what is audited is exactly what
changed: cancelling skips (and audits) the pending rows its own UPDATE moved, never rows a
dispatcher claimed in the meantime.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..actors import actor_name, same_actor
from ..app import App
from ..audit import log as audit
from ..clock import utcnow
from ..delivery.transitions import move_run, skip_pending
from ..errors import NotFound, StateError
from ..status import RunStatus
from ..storage.schema import approvals, deliveries, runs


def load_run(conn: sa.Connection, run_id: int, lock: bool = False) -> sa.Row[Any]:
    q = sa.select(runs).where(runs.c.id == run_id)
    row = conn.execute(q.with_for_update() if lock else q).one_or_none()
    if row is None:
        raise NotFound.translatable("no run %(run)s", run=run_id)
    return row


def mark_approved(conn: sa.Connection, run_id: int, actor: str, now: datetime) -> bool:
    """awaiting_approval -> approved, once the last level is in (a person's, or the rule
    version's for a scheduled firing); the caller audits how it was approved."""
    moved = move_run(
        conn,
        [run_id],
        from_=RunStatus.AWAITING_APPROVAL,
        to=RunStatus.APPROVED,
        actor=actor,
        now=now,
        values={"approved_at": now},
        audit_event=False,
    )
    return bool(moved)


def approve_run(
    app: App,
    run_id: int,
    by: str,
    *,
    may_approve: Callable[[int], None] | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    """One review level. Never by the run's creator, never twice by the same person (names
    compared as actors.same_actor does: case, width and stray spaces do not make a new person).
    `may_approve(level)` raises unless the acting account may approve that level."""
    by = actor_name(by)
    with app.engine.begin() as conn:
        run = load_run(conn, run_id, lock=True)
        if run.status != RunStatus.AWAITING_APPROVAL:
            raise StateError.translatable(
                "run %(run)s is %(status)s; only runs awaiting approval can be approved",
                run=run_id,
                status=run.status,
            )
        if same_actor(by, run.created_by):
            raise StateError.translatable(
                "run %(run)s was created by %(by)s; the creator cannot approve it",
                run=run_id,
                by=run.created_by,
            )
        done = conn.execute(
            sa.select(approvals).where(approvals.c.run_id == run_id).order_by(approvals.c.level)
        ).all()
        if (same := next((a for a in done if same_actor(a.approved_by, by)), None)) is not None:
            raise StateError.translatable(
                "%(by)s already approved run %(run)s (level %(level)s); each level needs a different person",
                by=same.approved_by,
                run=run_id,
                level=same.level,
            )
        levels = list(run.levels)
        level = len(done) + 1
        if may_approve is not None:
            may_approve(level)
        now = utcnow()
        conn.execute(
            approvals.insert().values(
                run_id=run_id, level=level, level_name=levels[level - 1], approved_by=by, approved_at=now
            )
        )
        status = RunStatus.APPROVED if level == len(levels) else RunStatus.AWAITING_APPROVAL
        if status == RunStatus.APPROVED:  # `run.approved` below says which level did it
            mark_approved(conn, run_id, by, now)
        audit.record(
            conn,
            by,
            "run.approved",
            f"run:{run_id}",
            level=level,
            level_name=levels[level - 1],
            of=len(levels),
            status=status,
            version=run.rule_version,
            **({"comment": comment} if comment else {}),
        )
    names = [a.approved_by for a in done] + [by]
    return {
        "run": run_id,
        "status": str(status),
        "approvals": [{"level": i + 1, "level_name": levels[i], "by": n} for i, n in enumerate(names)],
        "levels": len(levels),
    }


def cancel_run(app: App, run_id: int, by: str, *, comment: str | None = None) -> dict[str, Any]:
    """Cancel a run that has not completed: its pending deliveries are skipped (each audited)
    and their notice keys released; rows already claimed by a dispatcher go their way."""
    by = actor_name(by)
    with app.engine.begin() as conn:
        run = load_run(conn, run_id, lock=True)
        if run.status in (RunStatus.CANCELLED, RunStatus.COMPLETED):
            raise StateError.translatable("run %(run)s is already %(status)s", run=run_id, status=run.status)
        now = utcnow()
        move_run(
            conn,
            [run_id],
            from_=RunStatus(run.status),
            to=RunStatus.CANCELLED,
            actor=by,
            now=now,
            values={"cancelled_by": by, "cancelled_at": now},
            audit_event=False,  # `run.cancelled` below, once the skipped rows are known
        )
        skipped = skip_pending(
            conn,
            [deliveries.c.run_id == run_id],
            actor=by,
            now=now,
            reason=f"run cancelled by {by}",
            why="run cancelled",
        )
        audit.append(
            conn,
            [
                audit.AuditEvent(
                    by,
                    "run.cancelled",
                    f"run:{run_id}",
                    {"pending_skipped": len(skipped), **({"comment": comment} if comment else {})},
                )
            ],
            now=now,
        )
    return {"run": run_id, "status": str(RunStatus.CANCELLED), "skipped": len(skipped)}
