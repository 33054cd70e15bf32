"""Channel fallback: a resident one channel could not reach (failed at send, or a carrier's
`undelivered` / `failed` receipt) gets the rule's next reachable channel, e.g. sms -> email ->
letter. Once: the (run, resident, channel) key makes a second attempt a no-op. The new delivery
is linked to the first (`fallback_of`) and audited.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from ..app import App
from ..audience import choose_channel
from ..audit import log as audit
from ..status import Channel, DeliveryStatus
from ..storage.bulk import insert_new
from ..storage.schema import deliveries, opt_outs, runs


def fall_back(conn: sa.Connection, app: App, delivery_ids: list[int], now: datetime, actor: str) -> list[int]:
    """Create the fallback deliveries for these unreached deliveries; returns the new ids."""
    if not delivery_ids:
        return []
    d, t = deliveries, app.residents
    found = conn.execute(
        sa.select(d.c.id, d.c.run_id, d.c.resident_id, d.c.channel, runs.c.snapshot, runs.c.notice_key,
                  t.c.phone, t.c.phone_kind, t.c.email, t.c.address,
                  sa.exists().where(opt_outs.c.phone == t.c.phone).label("opted_out"))
        .join(runs, runs.c.id == d.c.run_id).join(t, t.c.resident_id == d.c.resident_id)
        .where(d.c.id.in_(delivery_ids))).all()
    rows = []
    for r in found:
        order = [Channel(c) for c in r.snapshot["channels"]]
        later = order[order.index(Channel(r.channel)) + 1:] if Channel(r.channel) in order else []
        channel, recipient, _ = choose_channel(later, None, r.phone, r.phone_kind, r.email, r.address, bool(r.opted_out))
        if channel is not None:
            rows.append({"run_id": r.run_id, "resident_id": r.resident_id, "channel": channel.value,
                         "status": DeliveryStatus.PENDING, "notice_key": r.notice_key, "recipient": recipient,
                         "fallback_of": r.id, "attempts": 0, "created_at": now, "updated_at": now})
    if not rows:
        return []
    created = conn.execute(insert_new(app.engine, d).returning(d.c.id, d.c.fallback_of, d.c.channel, d.c.run_id),
                           rows).all()
    audit.append(conn, [audit.AuditEvent(actor, "delivery.fallback", f"delivery:{new_id}",
                                         {"run": run_id, "fallback_of": first, "channel": channel, "to": "pending"})
                        for new_id, first, channel, run_id in created], now=now)
    return [c[0] for c in created]
