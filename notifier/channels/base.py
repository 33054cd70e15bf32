"""The one interface every delivery provider plugs into, in both directions.

Outward, a provider takes one rendered message and either returns a SendResult or raises a
ProviderError whose kind says whether a retry can help. Inward, what a provider later tells us
(a delivery receipt, a resident's reply) arrives as a provider-neutral DeliveryEvent or
InboundMessage, parsed by the provider package's webhooks (channels/webhooks.py). The dispatcher,
receipts and web own everything generic: claiming, status transitions, audit, retries, rate limits.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ProviderError
from ..status import Channel, DeliveryStatus
from .settings import ProviderSettings
from .templated import TemplateCall


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
    templates: Mapping[str, TemplateCall] = field(default_factory=dict)  # by provider kind (aliyun, tencent)


@dataclass(frozen=True)
class SendResult:
    status: DeliveryStatus  # usually SENT; DELIVERED where handing over is final (outbox)
    provider_message_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeliveryEvent:
    """A provider's later word on one message (a status callback), in our vocabulary. `raw` keeps
    every field the provider sent: the audit log shows what the carrier said, not our reading."""

    provider: str  # the provider's configured name
    message_id: str  # the provider's message id ("" when the callback does not carry one)
    delivery_id: int | None  # ours, when the callback URL carries it (see TwilioProvider.status_callback)
    status: DeliveryStatus
    provider_status: str  # the provider's own status word
    error_code: str | None = None
    reason: str | None = None  # readable (zh / en) explanation of error_code, if the provider has one
    raw: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InboundMessage:
    """A message a resident sent to one of our numbers (a reply such as 退订)."""

    provider: str
    sender: str  # as the provider gives it, not yet normalised
    text: str
    message_id: str = ""
    raw: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderContext:
    """What every provider may need beyond its own table: where relative paths start and which
    config file to name in errors. One type for all, so the registry builds every kind alike."""

    base_dir: Path = Path(".")
    where: str = "config"
    public_url: str = ""  # [serve] public_url: where residents check a notice (letters print its QR)

    def path(self, value: str) -> Path:
        """A configured path: absolute as given, else relative to base_dir."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p


class Provider(abc.ABC):
    """One configured provider. Every kind is built alike, `Kind(name, settings, context)`:
    `settings` is its `[providers.NAME]` table (secrets resolved), parsed once into the kind's
    `settings_class` as `options` (a subclass narrows its type); the limits every kind has (rate,
    burst, concurrency) are taken from it here, so the dispatcher applies them generically."""

    kind: ClassVar[str]
    channels: ClassVar[frozenset[Channel]]
    settings_class: ClassVar[type[ProviderSettings]] = ProviderSettings
    idempotent: ClassVar[bool] = False  # sending the same delivery twice produces one message
    can_lookup: ClassVar[bool] = False  # `lookup` can tell whether a message was accepted
    max_batch: int = 1  # messages one request may carry (send_batch); a provider may set its own

    def __init__(
        self, name: str, settings: Mapping[str, Any], context: ProviderContext | None = None
    ) -> None:
        self.name = name
        self.settings: Mapping[str, Any] = dict(settings)
        self.context = context or ProviderContext()
        self.options = self.settings_class.from_table(settings, name, self.context.where)
        self.rate_per_second: float | None = self.options.rate_per_second or None
        self.burst: float = self.options.burst
        self.concurrency: int = max(1, self.options.concurrency)
        self.configure()

    def configure(self) -> None:  # noqa: B027 - optional hook
        """Derive what the kind needs from `self.options`; called once, at the end of __init__
        (so every kind keeps the one constructor signature)."""

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect / prepare; called once before the first send."""

    @abc.abstractmethod
    async def send(self, message: OutboundMessage) -> SendResult: ...

    async def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult | ProviderError]:
        """Send several messages in one request where the provider can: one result or error per
        message, in order. An error raised (not returned) concerns the whole request."""
        out: list[SendResult | ProviderError] = []
        for message in messages:
            try:
                out.append(await self.send(message))
            except ProviderError as exc:
                out.append(exc)
        return out

    def batch_key(self, call: TemplateCall) -> tuple[str, ...]:
        """What messages must have in common to share one request (send_batch): by default the
        registered template and signature (Aliyun's SendBatchSms takes a variable set per
        number); a kind whose request carries one set for all (Tencent) adds the values."""
        return (call.code, call.sign)

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and disconnect; called once after the last send."""

    async def lookup(self, message: OutboundMessage, since: datetime) -> SendResult | None:
        """The provider's record of this message sent at or after `since`, or None if it has none."""
        raise NotImplementedError

    def describe(self) -> str:
        """Where messages go, without secrets."""
        return self.name
