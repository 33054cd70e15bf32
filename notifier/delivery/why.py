"""Why `send` left deliveries waiting: the gates the dispatcher applies (approval, publication
window, quiet hours, retry time), read back from the database, so a `sent 0` is never silent.

It only reads and explains; the dispatcher alone decides what is sent.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from ..app import App
from ..clock import as_utc
from ..status import Channel, DeliveryStatus, RunStatus
from ..storage.schema import approvals, deliveries, runs


def idle_reasons(app: App, now: datetime, run_id: int | None = None) -> list[dict[str, Any]]:
    """One entry per gate holding pending deliveries back: {reason, message, ...}. Empty when
    nothing waits. Reasons: no_pending, no_run, awaiting_approval, outside_window, quiet_hours,
    retry_later."""
    local = now.astimezone(app.config.timezone)
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
        waiting: dict[int, dict[str, Any]] = {}
        for r in conn.execute(pending):
            w = waiting.setdefault(r.run_id, {"n": 0, "sms": 0, "retry_at": None})
            w["n"] += r.n
            w["sms"] += r.n if r.channel == Channel.SMS else 0
            if r.retry_at is not None and as_utc(r.retry_at) > now:
                w["retry_at"] = min(filter(None, (w["retry_at"], as_utc(r.retry_at))))
        run_rows = {r.id: r for r in conn.execute(q)}
        done = dict(
            conn.execute(sa.select(approvals.c.run_id, sa.func.count()).group_by(approvals.c.run_id))
            .tuples()
            .all()
        )
    if run_id is not None and run_id not in run_rows:
        return [{"reason": "no_run", "run": run_id, "message": f"there is no run {run_id}"}]
    if not waiting:
        return [
            {
                "reason": "no_pending",
                "message": "no deliveries are pending"
                + (f" in run {run_id}" if run_id else "")
                + "; create and approve a run first (`notifier runs create RULE --by USER`)",
            }
        ]
    out: list[dict[str, Any]] = []
    unapproved = [rid for rid in sorted(waiting) if run_rows[rid].status == RunStatus.AWAITING_APPROVAL]
    if unapproved:
        parts = [
            f"run {rid} ({done.get(rid, 0)} of {len(run_rows[rid].levels)} levels)" for rid in unapproved
        ]
        out.append(
            {
                "reason": "awaiting_approval",
                "runs": unapproved,
                "message": f"not approved yet: {', '.join(parts)}; `notifier runs approve RUN --by USER`",
            }
        )
    approved = [rid for rid in sorted(waiting) if run_rows[rid].status == RunStatus.APPROVED]
    for rid in approved:
        window = _outside_window(run_rows[rid].snapshot, local.date())
        if window:
            out.append({"reason": "outside_window", "run": rid, "message": f"run {rid}: {window}"})
    open_runs = [rid for rid in approved if not _outside_window(run_rows[rid].snapshot, local.date())]
    quiet = app.config.quiet_hours
    if quiet.contains(local) and any(waiting[rid]["sms"] for rid in open_runs):
        until = quiet.ends_after(local)
        out.append(
            {
                "reason": "quiet_hours",
                "until": until.isoformat(),
                "runs": [rid for rid in open_runs if waiting[rid]["sms"]],
                "message": f"quiet hours until {until:%H:%M}: SMS waits (e-mail and letters are not held)",
            }
        )
    retry_at = [waiting[rid]["retry_at"] for rid in open_runs if waiting[rid]["retry_at"] is not None]
    if retry_at:
        at = min(retry_at).astimezone(app.config.timezone)
        out.append(
            {
                "reason": "retry_later",
                "at": at.isoformat(),
                "message": f"deliveries that failed for now are retried from {at:%Y-%m-%d %H:%M}",
            }
        )
    return out


def _outside_window(snapshot: dict[str, Any], today: date) -> str | None:
    """Why the run's item is not published today, as the dispatcher's claim gate sees it."""
    item = snapshot.get("item", {})
    start, until = item.get("publish_from"), item.get("publish_until")
    if start and today < date.fromisoformat(start):
        return f"outside the publication window: the item is published from {start}"
    if until and today > date.fromisoformat(until):
        return f"outside the publication window: it ended on {until}"
    return None
