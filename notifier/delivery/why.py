"""Why `send` left deliveries waiting: the gates the dispatcher applies (approval, publication
window, quiet hours, retry time), read back from the database, so a `sent 0` is never silent.

It only reads and explains; the dispatcher alone decides what is sent. The window gate is the
dispatcher's own (RunSnapshot.gate), so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..app import App
from ..clock import as_utc
from ..runs.snapshot import Gate, GateState, RunSnapshot
from ..status import Channel, DeliveryStatus, RunStatus
from ..storage.schema import approvals, deliveries, runs


@dataclass
class _Waiting:
    """A run's pending deliveries: how many, how many by SMS, and the next retry ahead."""

    run_id: int
    n: int = 0
    sms: int = 0
    retry_at: datetime | None = None


def idle_reasons(app: App, now: datetime, run_id: int | None = None) -> list[dict[str, Any]]:
    """One entry per gate holding pending deliveries back: {reason, message, ...}. Empty when
    nothing waits. Reasons: no_pending, no_run, awaiting_approval, outside_window, quiet_hours,
    retry_later."""
    local = now.astimezone(app.config.timezone)
    waiting, run_rows, done = _read(app, now, run_id)
    nothing = _nothing_waits(run_id, run_rows, waiting)
    if nothing:
        return nothing
    gates = {
        rid: RunSnapshot.from_json(run_rows[rid].snapshot).gate(local.date())
        for rid in sorted(waiting)
        if run_rows[rid].status == RunStatus.APPROVED
    }
    open_runs = [waiting[rid] for rid, g in gates.items() if g.state is GateState.OPEN]
    return (
        _unapproved(waiting, run_rows, done)
        + [_held(rid, g) for rid, g in gates.items() if g.state is not GateState.OPEN]
        + _quiet_hours(app, local, open_runs)
        + _retry_later(app, open_runs)
    )


def _nothing_waits(
    run_id: int | None, run_rows: dict[int, Any], waiting: dict[int, _Waiting]
) -> list[dict[str, Any]]:
    """The reason when there is no such run or nothing pending (else empty)."""
    if run_id is not None and run_id not in run_rows:
        return [{"reason": "no_run", "run": run_id, "message": f"there is no run {run_id}"}]
    if waiting:
        return []
    return [
        {
            "reason": "no_pending",
            "message": "no deliveries are pending"
            + (f" in run {run_id}" if run_id else "")
            + "; create and approve a run first (`notifier runs create RULE --by USER`)",
        }
    ]


def _read(
    app: App, now: datetime, run_id: int | None
) -> tuple[dict[int, _Waiting], dict[int, Any], dict[int, int]]:
    """Pending deliveries per run, the runs, and the approvals each run has."""
    d = deliveries
    pending = (
        sa.select(
            d.c.run_id,
            d.c.channel,
            sa.func.count().label("n"),
            sa.func.min(d.c.next_attempt_at).label("retry_at"),
        )
        .where(d.c.status == DeliveryStatus.PENDING)
        .group_by(d.c.run_id, d.c.channel)
    )
    q = sa.select(runs.c.id, runs.c.status, runs.c.snapshot, runs.c.levels)
    if run_id is not None:
        pending = pending.where(d.c.run_id == run_id)
        q = q.where(runs.c.id == run_id)
    with app.reader.connect() as conn:
        waiting: dict[int, _Waiting] = {}
        for r in conn.execute(pending):
            w = waiting.setdefault(r.run_id, _Waiting(r.run_id))
            w.n += r.n
            w.sms += r.n if r.channel == Channel.SMS else 0
            if r.retry_at is not None and as_utc(r.retry_at) > now:
                w.retry_at = min(filter(None, (w.retry_at, as_utc(r.retry_at))))
        run_rows = {r.id: r for r in conn.execute(q)}
        done = dict(
            conn.execute(sa.select(approvals.c.run_id, sa.func.count()).group_by(approvals.c.run_id))
            .tuples()
            .all()
        )
    return waiting, run_rows, done


def _unapproved(
    waiting: dict[int, _Waiting], run_rows: dict[int, Any], done: dict[int, int]
) -> list[dict[str, Any]]:
    unapproved = [rid for rid in sorted(waiting) if run_rows[rid].status == RunStatus.AWAITING_APPROVAL]
    if not unapproved:
        return []
    parts = [f"run {rid} ({done.get(rid, 0)} of {len(run_rows[rid].levels)} levels)" for rid in unapproved]
    return [
        {
            "reason": "awaiting_approval",
            "runs": unapproved,
            "message": f"not approved yet: {', '.join(parts)}; `notifier runs approve RUN --by USER`",
        }
    ]


def _held(run_id: int, gate: Gate) -> dict[str, Any]:
    return {"reason": "outside_window", "run": run_id, "message": f"run {run_id}: {gate.message}"}


def _quiet_hours(app: App, local: datetime, open_runs: list[_Waiting]) -> list[dict[str, Any]]:
    sms_runs = [w.run_id for w in open_runs if w.sms]
    quiet = app.config.quiet_hours
    if not (sms_runs and quiet.contains(local)):
        return []
    until = quiet.ends_after(local)
    return [
        {
            "reason": "quiet_hours",
            "until": until.isoformat(),
            "runs": sms_runs,
            "message": f"quiet hours until {until:%H:%M}: SMS waits (e-mail and letters are not held)",
        }
    ]


def _retry_later(app: App, open_runs: list[_Waiting]) -> list[dict[str, Any]]:
    retry_at = [w.retry_at for w in open_runs if w.retry_at is not None]
    if not retry_at:
        return []
    at = min(retry_at).astimezone(app.config.timezone)
    return [
        {
            "reason": "retry_later",
            "at": at.isoformat(),
            "message": f"deliveries that failed for now are retried from {at:%Y-%m-%d %H:%M}",
        }
    ]
