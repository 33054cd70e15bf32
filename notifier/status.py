"""Delivery and run statuses, channels and the two transition tables.

A status never moves backwards. The exceptions are `sending -> pending` and `unknown -> pending`,
used only when the provider definitely did not accept the message (a transient refusal such
as a 429 answered before acceptance, or a lookup at the provider that finds no such message),
or when a person settles an `unknown` row as "send again" (delivery/resolve.py), so that it
can be sent later; and `failed` / `undelivered -> pending`, only when a person sends failed
deliveries again (delivery/retry.py).
"""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    LETTER = "letter"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"


class RunStatus(StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


S = DeliveryStatus
ALLOWED_TRANSITIONS: dict[DeliveryStatus, frozenset[DeliveryStatus]] = {
    S.PENDING: frozenset({S.SENDING, S.SKIPPED, S.FAILED}),
    S.SENDING: frozenset({S.SENT, S.DELIVERED, S.FAILED, S.UNDELIVERED, S.UNKNOWN, S.PENDING}),
    S.SENT: frozenset({S.DELIVERED, S.UNDELIVERED, S.FAILED}),
    S.UNKNOWN: frozenset({S.SENT, S.DELIVERED, S.UNDELIVERED, S.FAILED, S.PENDING}),
    S.DELIVERED: frozenset(),
    S.FAILED: frozenset({S.PENDING}),  # a person's retry only (delivery/retry.py)
    S.UNDELIVERED: frozenset({S.PENDING}),  # likewise
    S.SKIPPED: frozenset(),
}

FINAL_STATUSES = frozenset({S.DELIVERED, S.FAILED, S.UNDELIVERED, S.SKIPPED, S.UNKNOWN, S.SENT})
"""Statuses after which nothing more is sent (`sent` may still gain a receipt)."""

NOT_REACHED = frozenset({S.FAILED, S.UNDELIVERED})
"""Statuses after which the rule's next channel is tried (channel fallback)."""


R = RunStatus
RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    R.AWAITING_APPROVAL: frozenset({R.APPROVED, R.CANCELLED}),
    R.APPROVED: frozenset({R.COMPLETED, R.CANCELLED}),
    # A completed run is reopened when a channel fallback adds a delivery to it (fallback.py)
    # or a person sends failed deliveries again (retry.py).
    R.COMPLETED: frozenset({R.APPROVED}),
    R.CANCELLED: frozenset(),
}
"""Run statuses: approval, completion (nothing open left), cancellation; reopening by fallback or retry."""


CHANNELS: dict[str, Channel] = {c.value: c for c in Channel}
STATUSES: dict[str, DeliveryStatus] = {s.value: s for s in DeliveryStatus}
"""Members by stored value: a dict lookup, for per-row paths (calling the enum is much slower)."""


def can_transition(old: DeliveryStatus, new: DeliveryStatus) -> bool:
    return new in ALLOWED_TRANSITIONS[old]
