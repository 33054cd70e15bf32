"""Writing each message to `DIR/run-RUN/DELIVERY.CHANNEL.txt`.

Files are named by delivery id and written atomically, so a resend after a crash rewrites
the same file instead of adding a second message: handing over is final (`delivered`).
"""

from __future__ import annotations

import os

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
        self.base = str(self.dir)
        # A write never waits (no await): one at a time whatever `concurrency` says, so the
        # dispatcher sends them in turn without a task each (delivery/send.py).
        self.concurrency = 1

    async def send(self, message: OutboundMessage) -> SendResult:
        name = f"{message.delivery_id:08d}.{message.channel.value}.txt"
        text = render(message)
        path = self._write(message.run_id, name, text)  # (in threads: slower here, measured)
        return SendResult(DeliveryStatus.DELIVERED, f"outbox:{name}", {"file": path})

    def _write(self, run_id: int, name: str, text: str) -> str:
        path = f"{self.base}/run-{run_id}/{name}"
        try:
            _write(path, text)
        except OSError:  # the folder does not exist yet, or the disk refuses: say why (files.py)
            write_atomic(self.dir / f"run-{run_id}" / name, text, self.name, "outbox file")
        return path

    def describe(self) -> str:
        return f"outbox ({self.dir})"


def _write(path: str, text: str) -> None:
    """write_atomic's temporary file and rename, on plain strings into an existing folder."""
    tmp = path + ".tmp"
    data = text.encode("utf-8")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, path)


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
