"""A real SMTP server (aiosmtpd) on 127.0.0.1 that misbehaves when told to, so the SMTP provider
and the dispatcher meet the answers and dropped connections a county's mail relay really gives.

Faults are planned as `ACTION@STEP`, done once each, in order, when a transaction reaches STEP:
MAIL, RCPT, DATA (the DATA command) or END (after the final "."). ACTION is a reply code
("421" also closes the channel, as servers do; any other 4xx/5xx just answers), `close` (the
connection is gone without an answer) or `drop` (answered, then closed soon after, like a relay
dropping an idle connection). Mailboxes in `refuse` are unknown: a permanent 550 at RCPT.
Every message the server took is kept with its envelope and raw bytes."""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from .project import free_port

CLOSE_SOON = 0.1  # seconds after which a `drop` closes the connection
REPLIES = {
    "421": "421 4.3.2 service not available, closing channel",
    "451": "451 4.3.0 try again later",
    "550": "550 5.1.1 mailbox unavailable",
    "554": "554 5.7.1 message refused",
}


@dataclass(frozen=True)
class Mail:
    """One message as the server took it: envelope and the bytes on the wire."""

    sender: str
    recipients: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def body_text(msg: EmailMessage, subtype: str) -> str:
    """The decoded text of the message's text/`subtype` body (plain, or html)."""
    part = msg.get_body((subtype,))
    assert part is not None, f"no text/{subtype} body"
    return str(part.get_content())


class SmtpServer:
    """The aiosmtpd handler and its controller in one: `with SmtpServer() as smtp:` listens on
    `smtp.port` in a thread of its own until the block ends."""

    def __init__(self) -> None:
        self.plan: list[str] = []
        self.refuse: set[str] = set()
        self.received: list[Mail] = []
        self.port = free_port()
        self._controller = _Controller(self, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[EmailMessage]:
        return [m.message for m in self.received]

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    def take(self, step: str) -> str | None:
        """The planned fault for this step, if it is next in the plan."""
        if self.plan and self.plan[0].endswith("@" + step):
            return self.plan.pop(0).partition("@")[0]
        return None

    @staticmethod
    def answer(server: SMTP, fault: str | None, ok: str) -> str:
        transport = server.transport
        assert isinstance(transport, asyncio.Transport)
        if fault == "close":  # gone without an answer
            transport.abort()
        elif fault in ("421", "drop"):
            asyncio.get_running_loop().call_later(CLOSE_SOON if fault == "drop" else 0, transport.close)
        if fault is None or fault in ("close", "drop"):
            return ok
        return REPLIES.get(fault, f"{fault} fault injected")

    async def handle_MAIL(self, server: SMTP, session: Any, envelope: Any, address: str, options: Any) -> str:
        envelope.mail_from = address
        return self.answer(server, self.take("MAIL"), "250 OK")

    async def handle_RCPT(self, server: SMTP, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return REPLIES["550"]
        fault = self.take("RCPT")
        if fault is None:
            envelope.rcpt_tos.append(address)
        return self.answer(server, fault, "250 OK")

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        fault = self.take("END")
        if fault in (None, "close", "drop"):  # taken (a "close" then loses the answer)
            self.received.append(Mail(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.content))
        return self.answer(server, fault, "250 OK")


class _Session(SMTP):
    """aiosmtpd's protocol, able to vanish before it answers the DATA command."""

    async def smtp_DATA(self, arg: str) -> None:
        if self.event_handler.take("DATA") == "close":
            assert isinstance(self.transport, asyncio.Transport)
            self.transport.abort()
            return
        await super().smtp_DATA(arg)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _Session(self.handler, **self.SMTP_kwargs)
