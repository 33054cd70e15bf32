"""`outbox`: each message written to a file of its own. For demos, tests and manual sending.

Files are named by delivery id and written atomically, so a resend after a crash rewrites
the same file instead of adding a second message.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..status import Channel, DeliveryStatus
from .base import OutboundMessage, Provider, SendResult


class OutboxProvider(Provider):
    kind = "outbox"
    idempotent = True
    channels = frozenset({Channel.SMS, Channel.EMAIL, Channel.LETTER})

    def __init__(self, name: str, settings: dict, base_dir: Path) -> None:  # type: ignore[type-arg]
        super().__init__(name, settings)
        d = Path(settings.get("dir", "outbox"))
        self.dir = d if d.is_absolute() else base_dir / d
        self._made: set[Path] = set()

    async def send(self, message: OutboundMessage) -> SendResult:
        folder = self.dir / f"run-{message.run_id}"
        if folder not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(folder)
        path = folder / f"{message.delivery_id:08d}.{message.channel.value}.txt"
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
        _write_atomic(path, text)  # temporary file + rename: a crash never leaves half a message
        return SendResult(DeliveryStatus.DELIVERED, f"outbox:{path.name}", {"file": str(path)})

    def describe(self) -> str:
        return f"outbox ({self.dir})"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
