"""The one interface every delivery provider plugs into.

A provider takes one rendered message and either returns a SendResult or raises
ProviderError saying whether a retry can help. The dispatcher owns everything generic:
claiming, status transitions, audit, retries, rate limits.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from ..status import Channel, DeliveryStatus


@dataclass(frozen=True)
class OutboundMessage:
    delivery_id: int
    run_id: int
    channel: Channel
    resident_id: str
    recipient: str  # E.164 number, e-mail address or postal address
    recipient_name: str
    body: str
    subject: str | None = None
    html: str | None = None
    segments: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. township, village, item title (letters)


@dataclass(frozen=True)
class SendResult:
    status: DeliveryStatus  # usually SENT; DELIVERED where handing over is final (outbox)
    provider_message_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


class Provider(abc.ABC):
    kind: ClassVar[str]
    channels: ClassVar[frozenset[Channel]]
    idempotent: ClassVar[bool] = False  # sending the same delivery twice produces one message
    can_lookup: ClassVar[bool] = False  # `lookup` can tell whether a message was accepted

    def __init__(self, name: str, settings: dict[str, Any]) -> None:
        self.name = name
        self.settings = settings
        rate = settings.get("rate_per_second")
        self.rate_per_second: float | None = float(rate) if rate else None
        self.concurrency: int = int(settings.get("connections", settings.get("concurrency", 10)) or 10)

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect / prepare; called once before the first send."""

    @abc.abstractmethod
    async def send(self, message: OutboundMessage) -> SendResult: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and disconnect; called once after the last send."""

    async def lookup(self, message: OutboundMessage, since: datetime) -> SendResult | None:
        """The provider's record of this message sent at or after `since`, or None if it has none."""
        raise NotImplementedError

    def describe(self) -> str:
        """Where messages go, without secrets."""
        return self.name
