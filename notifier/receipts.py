"""Delivery receipts: a provider's later word on a message (a DeliveryEvent) -> final status.

Provider-neutral: each provider package parses its callbacks into DeliveryEvents
(channels/<kind>/webhooks.py); this module only applies them. An event finds its delivery by our
delivery id when the callback carries it, else by the provider's message id recorded as
`provider_message_id`. It is applied in one transaction that locks the row, and only along
`status.ALLOWED_TRANSITIONS` (through delivery.transitions): receipts arrive duplicated and out of
order (Twilio posts `sent` and `delivered` concurrently), so a status never moves backwards and a
late or duplicate receipt is recorded and ignored. Every receipt, applied or not, goes into the
audit log (`delivery.receipt`) with its raw fields: auditors can see what the carrier said even
when it changed nothing. That event is the audit record of the status change too (it carries
`from` and `to`), so no separate `delivery.status` event is written for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from .app import App
from .audit import log as audit
from .audit.pseudonyms import scrub
from .channels.base import DeliveryEvent
from .clock import utcnow
from .delivery.fallback import fall_back
from .delivery.transitions import Move, move_each
from .errors import NotFound
from .status import NOT_REACHED, can_transition
from .status import DeliveryStatus as S
from .storage.schema import deliveries


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # the delivery already has this status
    LATE = "late"  # the delivery is already further on: moving would go backwards
    MISMATCH = "mismatch"  # the delivery id names a delivery that recorded another message id
    UNMATCHED = "unmatched"  # no delivery with this id / message id


@dataclass(frozen=True)
class ReceiptResult:
    outcome: Outcome
    delivery_id: int | None
    old: str | None
    new: str | None

    def as_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome.value, "delivery": self.delivery_id, "from": self.old, "to": self.new}


def _find(conn: sa.Connection, event: DeliveryEvent) -> sa.Row[Any] | None:
    d = deliveries
    q = sa.select(d.c.id, d.c.run_id, d.c.status, d.c.provider_message_id)
    q = (
        q.where(d.c.id == event.delivery_id)
        if event.delivery_id is not None
        else q.where(d.c.provider_message_id == event.message_id)
    )
    if conn.dialect.name == "postgresql":  # SQLite: BEGIN IMMEDIATE already made this the only writer
        q = q.with_for_update()
    return conn.execute(q.limit(1)).one_or_none()


def _judge(row: sa.Row[Any], event: DeliveryEvent) -> Outcome:
    """What this event may do to the row it found."""
    if event.message_id and row.provider_message_id and row.provider_message_id != event.message_id:
        return Outcome.MISMATCH
    if row.status == event.status:
        return Outcome.DUPLICATE
    if not can_transition(S(row.status), event.status):
        return Outcome.LATE
    return Outcome.APPLIED


def _payload(event: DeliveryEvent) -> dict[str, Any]:
    """The event as the audit log keeps it (keys as they have always been: auditors query them)."""
    return {
        "message_sid": event.message_id,
        "provider_status": event.provider_status,
        "status": event.status.value,
        "error_code": event.error_code,
        "raw": scrub(dict(event.raw)),  # a receipt quotes the number it went to: masked
    }


def _move(conn: sa.Connection, row: sa.Row[Any], event: DeliveryEvent, actor: str, now: datetime) -> bool:
    """Apply the event's status to the (locked) row; True if it moved."""
    values: dict[str, Any] = {}
    if event.message_id and not row.provider_message_id:
        values["provider_message_id"] = event.message_id  # the send's answer was lost
    reason = None
    if event.status in NOT_REACHED:
        code = event.error_code
        values["error_code"] = code
        reason = f"运营商未送达 / carrier did not deliver: {event.reason or 'no reason given'}" + (
            f" [{code}]" if code else ""
        )
    moved, _ = move_each(  # the receipt event below is this move's audit record
        conn,
        [Move(row.id, event.status, values=values, reason=reason)],
        from_=S(row.status),
        actor=actor,
        now=now,
        audit_now=False,
    )
    return bool(moved)


def _apply(
    conn: sa.Connection, app: App, row: sa.Row[Any], event: DeliveryEvent, actor: str
) -> ReceiptResult:
    now = utcnow()
    outcome = _judge(row, event)
    if outcome is Outcome.APPLIED and not _move(conn, row, event, actor, now):
        outcome = Outcome.LATE  # the row moved on between the read and the update
    if outcome is Outcome.APPLIED and event.status in NOT_REACHED:
        fall_back(conn, app, [row.id], now, actor)  # the carrier could not reach them: next channel
    new = event.status.value if outcome is Outcome.APPLIED else row.status
    audit.record(
        conn,
        actor,
        "delivery.receipt",
        f"delivery:{row.id}",
        run=row.run_id,
        outcome=outcome.value,
        **{"from": row.status, "to": new},
        **_payload(event),
    )
    return ReceiptResult(outcome, row.id, row.status, new)


def apply_event(app: App, event: DeliveryEvent, *, actor: str | None = None) -> ReceiptResult:
    """Apply one delivery event in one transaction (row lock, transition check, audit); `actor`
    defaults to the provider's name. Raises NotFound for an event that matches no delivery, after
    recording it: a verified receipt is evidence."""
    actor = actor or event.provider
    with app.engine.begin() as conn:
        row = _find(conn, event)
        if row is not None:
            return _apply(conn, app, row, event, actor)
        audit.record(
            conn,
            actor,
            "delivery.receipt",
            f"receipt:{event.message_id or event.delivery_id}",
            outcome=Outcome.UNMATCHED.value,
            **_payload(event),
        )
    where = (
        f"delivery {event.delivery_id}" if event.delivery_id is not None else f"message {event.message_id}"
    )
    raise NotFound(f"no delivery for this receipt ({where})")
