"""Channel fallback: a resident one channel could not reach (failed at send, or a carrier's
`undelivered` / `failed` receipt) gets the rule's next reachable channel, e.g. sms -> email ->
letter. Once: the (run, resident, channel) key makes a second attempt a no-op. The new delivery
is linked to the first (`fallback_of`), sends the message stored for that channel when the run
was created (to the contact frozen then), and is audited. A run that had completed is reopened,
so the dispatcher sends the fallback (a late `undelivered` receipt can arrive days later); a
cancelled run gets none (its pending rows were skipped: a new one would wait there for ever).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..app import App
from ..audit import log as audit
from ..messages import later_channels
from ..runs.snapshot import RunSnapshot
from ..status import Channel, DeliveryStatus, RunStatus
from ..storage.bulk import insert_new
from ..storage.schema import deliveries, opt_outs, run_messages, runs
from .complete import reopen_runs


def fall_back(conn: sa.Connection, app: App, delivery_ids: list[int], now: datetime, actor: str) -> list[int]:
    """Create the fallback deliveries for these unreached deliveries; returns the new ids."""
    if not delivery_ids:
        return []
    d = deliveries
    found = conn.execute(
        sa.select(
            d.c.id,
            d.c.run_id,
            d.c.resident_id,
            d.c.channel,
            d.c.change_kind,
            runs.c.snapshot,
            runs.c.notice_key,
        )
        .join(runs, runs.c.id == d.c.run_id)
        .where(d.c.id.in_(delivery_ids), runs.c.status != RunStatus.CANCELLED)  # nothing new in those
    ).all()
    stored = _stored_messages(conn, {(r.run_id, r.resident_id) for r in found})
    rows = [row for r in found if (row := _fallback_row(r, stored, now)) is not None]
    if not rows:
        return []
    created = conn.execute(
        insert_new(app.engine, d).returning(d.c.id, d.c.fallback_of, d.c.channel, d.c.run_id), rows
    ).all()
    audit.append(
        conn,
        [
            audit.AuditEvent(
                actor,
                "delivery.fallback",
                f"delivery:{new_id}",
                {"run": run_id, "fallback_of": first, "channel": channel, "to": "pending"},
            )
            for new_id, first, channel, run_id in created
        ],
        now=now,
    )
    reopen_runs(conn, (c.run_id for c in created), now, actor, "a fallback delivery was created")
    return [c.id for c in created]


def _stored_messages(
    conn: sa.Connection, members: set[tuple[int, str]]
) -> dict[tuple[int, str, Channel], Any]:
    """The messages stored at run creation for these (run, resident) pairs, by channel, with
    whether the recipient has opted out of SMS since."""
    m = run_messages
    stored = conn.execute(
        sa.select(
            m.c.id,
            m.c.run_id,
            m.c.resident_id,
            m.c.channel,
            m.c.recipient,
            sa.exists().where(opt_outs.c.phone == m.c.recipient).label("opted_out"),
        ).where(
            sa.tuple_(m.c.run_id, m.c.resident_id).in_(sorted(members)),
            m.c.purged_at.is_(None),  # removed by retention: nothing left to send
        )
    ).all()
    return {(s.run_id, s.resident_id, Channel(s.channel)): s for s in stored}


def _fallback_row(
    first: Any, stored: dict[tuple[int, str, Channel], Any], now: datetime
) -> dict[str, Any] | None:
    """The delivery row of the first later channel with a stored message (and, for SMS, no
    opt-out), or None when no channel is left."""
    order = RunSnapshot.from_json(first.snapshot).channels
    for channel in later_channels(order, Channel(first.channel)):
        message = stored.get((first.run_id, first.resident_id, channel))
        if message is not None and not (channel is Channel.SMS and message.opted_out):
            return {
                "run_id": first.run_id,
                "resident_id": first.resident_id,
                "channel": channel.value,
                "status": DeliveryStatus.PENDING,
                "notice_key": first.notice_key,
                "recipient": message.recipient,
                "message_id": message.id,
                "fallback_of": first.id,
                "change_kind": first.change_kind,  # the same notice, on another channel
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
    return None
