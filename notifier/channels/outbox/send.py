"""Writing each message to `DIR/run-RUN/DELIVERY.CHANNEL.txt`.

Files are named by delivery id and written atomically, so a resend after a crash rewrites
the same file instead of adding a second message: handing over is final (`delivered`).
"""

from __future__ import annotations

from ...status import Channel, DeliveryStatus
from ..base import OutboundMessage, Provider, SendResult
from ..files import write_atomic
from .settings import OutboxSettings


class OutboxProvider(Provider):
    kind = "outbox"
    idempotent = True
    channels = frozenset({Channel.SMS, Channel.EMAIL, Channel.LETTER})
    settings_class = OutboxSettings
    options: OutboxSettings

    def configure(self) -> None:
        self.dir = self.context.path(self.options.dir)

    async def send(self, message: OutboundMessage) -> SendResult:
        path = self.dir / f"run-{message.run_id}" / f"{message.delivery_id:08d}.{message.channel.value}.txt"
        write_atomic(path, render(message), self.name, "outbox file")
        return SendResult(DeliveryStatus.DELIVERED, f"outbox:{path.name}", {"file": str(path)})

    def describe(self) -> str:
        return f"outbox ({self.dir})"


def render(message: OutboundMessage) -> str:
    """The file's text: a few header lines, a blank line, the body (and the HTML part, if any)."""
    lines = [
        f"Delivery-Id: {message.delivery_id}",
        f"Run: {message.run_id}",
        f"Channel: {message.channel.value}",
        f"Resident: {message.resident_id}",
        f"To: {message.recipient}",
    ]
    if message.subject is not None:
        lines.append(f"Subject: {message.subject}")
    if message.segments is not None:
        lines.append(f"Segments: {message.segments}")
    text = "\n".join(lines) + "\n\n" + message.body + ("" if message.body.endswith("\n") else "\n")
    if message.html:
        text += "\n--- html ---\n" + message.html + "\n"
    return text
