"""Channel fallback: a resident one channel could not reach (failed at send, or a carrier's
`undelivered` / `failed` receipt) gets the rule's next reachable channel, e.g. sms -> email ->
letter. Once: the (run, resident, channel) key makes a second attempt a no-op. The new delivery
is linked to the first (`fallback_of`), sends the message stored for that channel when the run
was created (to the contact frozen then), and is audited. A run that had completed is reopened,
so the dispatcher sends the fallback (a late `undelivered` receipt can arrive days later).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from ..app import App
from ..audit import log as audit
from ..messages import later_channels
from ..status import Channel, DeliveryStatus, RunStatus
from ..storage.bulk import insert_new
from ..storage.schema import deliveries, opt_outs, run_messages, runs


def fall_back(conn: sa.Connection, app: App, delivery_ids: list[int], now: datetime, actor: str) -> list[int]:
    """Create the fallback deliveries for these unreached deliveries; returns the new ids."""
    if not delivery_ids:
        return []
    d, m = deliveries, run_messages
    found = conn.execute(
        sa.select(d.c.id, d.c.run_id, d.c.resident_id, d.c.channel, runs.c.snapshot, runs.c.notice_key)
        .join(runs, runs.c.id == d.c.run_id)
        .where(d.c.id.in_(delivery_ids))
    ).all()
    stored = conn.execute(
        sa.select(
            m.c.id,
            m.c.run_id,
            m.c.resident_id,
            m.c.channel,
            m.c.recipient,
            sa.exists().where(opt_outs.c.phone == m.c.recipient).label("opted_out"),
        ).where(sa.tuple_(m.c.run_id, m.c.resident_id).in_([(r.run_id, r.resident_id) for r in found]))
    ).all()
    by_member = {(s.run_id, s.resident_id, Channel(s.channel)): s for s in stored}
    rows = []
    for r in found:
        for channel in later_channels([Channel(c) for c in r.snapshot["channels"]], Channel(r.channel)):
            message = by_member.get((r.run_id, r.resident_id, channel))
            if message is not None and not (channel is Channel.SMS and message.opted_out):
                rows.append(
                    {
                        "run_id": r.run_id,
                        "resident_id": r.resident_id,
                        "channel": channel.value,
                        "status": DeliveryStatus.PENDING,
                        "notice_key": r.notice_key,
                        "recipient": message.recipient,
                        "message_id": message.id,
                        "fallback_of": r.id,
                        "attempts": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                break
    if not rows:
        return []
    created = conn.execute(
        insert_new(app.engine, d).returning(d.c.id, d.c.fallback_of, d.c.channel, d.c.run_id), rows
    ).all()
    events = [
        audit.AuditEvent(
            actor,
            "delivery.fallback",
            f"delivery:{new_id}",
            {"run": run_id, "fallback_of": first, "channel": channel, "to": "pending"},
        )
        for new_id, first, channel, run_id in created
    ]
    reopened = (
        conn.execute(
            runs.update()
            .where(runs.c.id.in_({c[3] for c in created}), runs.c.status == RunStatus.COMPLETED)
            .values(status=RunStatus.APPROVED, completed_at=None)
            .returning(runs.c.id)
        )
        .scalars()
        .all()
    )
    events += [
        audit.AuditEvent(
            actor,
            "run.reopened",
            f"run:{rid}",
            {"from": "completed", "to": "approved", "reason": "a fallback delivery was created"},
        )
        for rid in reopened
    ]
    audit.append(conn, events, now=now)
    return [c[0] for c in created]
