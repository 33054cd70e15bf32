"""Delivery receipts: a provider's later word on a message (Twilio status callbacks) -> final status.

A receipt finds its delivery by the `d` query parameter the Twilio provider puts on the callback
URL (present even when a crash lost the SID between Twilio's answer and our commit), else by the
MessageSid recorded as `provider_message_id`. It is applied in one transaction that locks the row,
and only along `status.ALLOWED_TRANSITIONS`: receipts arrive duplicated and out of order (Twilio
posts `sent` and `delivered` concurrently), so a status never moves backwards and a late or
duplicate receipt is recorded and ignored. Every receipt, applied or not, goes into the audit log
with its raw fields: auditors can see what the carrier said even when it changed nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from .app import App
from .audit import log as audit
from .clock import utcnow
from .delivery.fallback import fall_back
from .errors import InputError, NotFound
from .status import DeliveryStatus as S
from .status import can_transition
from .storage.schema import deliveries

ACTOR = "twilio"

TWILIO_STATUS: dict[str, S] = {
    # Twilio holds the message: for us it is `sent` (the provider took it), not yet delivered.
    "accepted": S.SENT,
    "scheduled": S.SENT,
    "queued": S.SENT,
    "sending": S.SENT,
    "sent": S.SENT,  # handed to the carrier; only `delivered` means the handset has it
    "delivered": S.DELIVERED,
    "read": S.DELIVERED,  # WhatsApp / RCS read receipts: delivered and then some
    "undelivered": S.UNDELIVERED,
    "failed": S.FAILED,
}
"""Twilio MessageStatus -> our status. Anything else is a malformed receipt (400), not a guess."""

CARRIER_REASONS: dict[str, str] = {
    "30001": "队列溢出 / queue overflow",
    "30002": "账户被暂停 / account suspended",
    "30003": "手机无法接通（关机或不在服务区）/ unreachable destination handset",
    "30004": "短信被拦截 / message blocked",
    "30005": "号码不存在 / unknown destination handset",
    "30006": "固定电话或运营商无法送达 / landline or unreachable carrier",
    "30007": "运营商过滤 / carrier violation (filtered)",
    "30008": "未知错误 / unknown error",
}
"""Twilio delivery error codes (ErrorCode on undelivered / failed receipts) staff can read."""


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # the delivery already has this status
    LATE = "late"  # the delivery is already further on: moving would go backwards
    MISMATCH = "mismatch"  # `d` names a delivery that recorded another message SID
    UNMATCHED = "unmatched"  # no delivery with this id / SID


@dataclass(frozen=True)
class Receipt:
    """One status callback, parsed. `raw` keeps every field Twilio sent, for the audit log."""

    message_sid: str
    provider_status: str
    status: S
    error_code: str | None
    delivery_id: int | None
    raw: dict[str, str]

    @classmethod
    def from_twilio(cls, form: Mapping[str, str], query: Mapping[str, str]) -> "Receipt":
        """Parse a Twilio status callback; InputError names the field that is missing or wrong."""
        sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
        status_text = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
        if not status_text:
            raise InputError("status callback without MessageStatus")
        if status_text not in TWILIO_STATUS:
            raise InputError(
                f"status callback with unknown MessageStatus {status_text!r}; "
                f"known: {', '.join(TWILIO_STATUS)}"
            )
        d = query.get("d")
        delivery_id: int | None = None
        if d is not None and d != "":
            if not d.isascii() or not d.isdigit():
                raise InputError(f"query parameter d must be a delivery id (digits), not {d!r}")
            delivery_id = int(d)
        if delivery_id is None and not sid:
            raise InputError(
                "status callback without MessageSid and without the d=<delivery id> query parameter"
            )
        code = (form.get("ErrorCode") or "").strip() or None
        return cls(sid, status_text, TWILIO_STATUS[status_text], code, delivery_id, dict(form))


@dataclass(frozen=True)
class ReceiptResult:
    outcome: Outcome
    delivery_id: int | None
    old: str | None
    new: str | None

    def as_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome.value, "delivery": self.delivery_id, "from": self.old, "to": self.new}


def _find(conn: sa.Connection, receipt: Receipt, postgres: bool) -> sa.Row[Any] | None:
    d = deliveries
    q = sa.select(d.c.id, d.c.run_id, d.c.status, d.c.provider_message_id)
    q = (
        q.where(d.c.id == receipt.delivery_id)
        if receipt.delivery_id is not None
        else q.where(d.c.provider_message_id == receipt.message_sid)
    )
    if postgres:  # SQLite: BEGIN IMMEDIATE already made this transaction the only writer
        q = q.with_for_update()
    return conn.execute(q.limit(1)).one_or_none()


def apply_receipt(app: App, receipt: Receipt, *, actor: str = ACTOR) -> ReceiptResult:
    """Apply one receipt in one transaction (row lock, transition check, audit). Raises NotFound
    for a receipt that matches no delivery, after recording it: a signed receipt is evidence."""
    now = utcnow()
    payload: dict[str, Any] = {
        "message_sid": receipt.message_sid,
        "provider_status": receipt.provider_status,
        "status": receipt.status.value,
        "error_code": receipt.error_code,
        "raw": receipt.raw,
    }
    where = (
        f"delivery {receipt.delivery_id}"
        if receipt.delivery_id is not None
        else f"message {receipt.message_sid}"
    )
    with app.engine.begin() as conn:
        row = _find(conn, receipt, app.engine.dialect.name == "postgresql")
        if row is None:
            audit.record(
                conn,
                actor,
                "delivery.receipt",
                f"receipt:{receipt.message_sid or receipt.delivery_id}",
                outcome=Outcome.UNMATCHED.value,
                **payload,
            )
            result = ReceiptResult(Outcome.UNMATCHED, receipt.delivery_id, None, None)
        else:
            old = S(row.status)
            if (
                receipt.message_sid
                and row.provider_message_id
                and row.provider_message_id != receipt.message_sid
            ):
                outcome = Outcome.MISMATCH
            elif old == receipt.status:
                outcome = Outcome.DUPLICATE
            elif not can_transition(old, receipt.status):
                outcome = Outcome.LATE
            else:
                outcome = Outcome.APPLIED
            if outcome is Outcome.APPLIED:
                values: dict[str, Any] = {"status": receipt.status.value, "updated_at": now}
                if receipt.message_sid and not row.provider_message_id:
                    values["provider_message_id"] = receipt.message_sid  # the send's answer was lost
                if receipt.status in (S.UNDELIVERED, S.FAILED):
                    code = receipt.error_code
                    values["error_code"] = code
                    values["reason"] = (
                        f"运营商未送达 / carrier did not deliver: "
                        f"{CARRIER_REASONS.get(code or '', 'no reason given')}"
                        + (f" [{code}]" if code else "")
                    )
                conn.execute(
                    deliveries.update()
                    .where(deliveries.c.id == row.id, deliveries.c.status == old.value)
                    .values(**values)
                )
                if receipt.status in (
                    S.UNDELIVERED,
                    S.FAILED,
                ):  # the carrier could not reach them: next channel
                    fall_back(conn, app, [row.id], now, actor)
            audit.record(
                conn,
                actor,
                "delivery.receipt",
                f"delivery:{row.id}",
                run=row.run_id,
                outcome=outcome.value,
                **{
                    "from": old.value,
                    "to": receipt.status.value if outcome is Outcome.APPLIED else old.value,
                },
                **payload,
            )
            result = ReceiptResult(
                outcome, row.id, old.value, receipt.status.value if outcome is Outcome.APPLIED else old.value
            )
    if result.outcome is Outcome.UNMATCHED:
        raise NotFound(f"no delivery for this receipt ({where})")
    return result
