"""Sending e-mail through any SMTP server with aiosmtplib. UTF-8 subject and body (RFC 2047 /
MIME), plain text with an HTML alternative where the template has one.

What a failure means depends on how far the transaction got. A 4xx answer (421 included, at any
step) and a connection lost or timed out before the message itself was written (at MAIL, RCPT or
the DATA command) are transient: the server cannot have taken the message, so it is retried on a
fresh connection (at once if the connection was an idle one from the pool, which servers drop
after a while; later, with backoff, otherwise). 5xx answers are permanent. Only a connection lost
after the message and its final "." were written is ambiguous: the server may have taken it, so
the delivery ends `unknown` (settled with `notifier send --resolve-unknown`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr

import aiosmtplib

from ...errors import AmbiguousError, PermanentError, ProviderError, TransientError
from ...masking import mask_email
from ...status import Channel, DeliveryStatus
from ..base import OutboundMessage, Provider, SendResult
from .connection import Connection
from .pool import Pool
from .settings import SmtpSettings

_LOST = (OSError, asyncio.TimeoutError, aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError)


class SmtpProvider(Provider):
    kind = "smtp"
    channels = frozenset({Channel.EMAIL})
    settings_class = SmtpSettings
    options: SmtpSettings

    def configure(self) -> None:
        self.pool = Pool(self._connect, self.options.connections)
        self.concurrency = self.pool.size

    async def _connect(self) -> Connection:
        s = self.options
        client = Connection(
            hostname=s.host, port=s.port, timeout=s.timeout, use_tls=s.tls, start_tls=s.starttls
        )
        await client.connect()
        if s.username:
            await client.login(s.username, s.password)
        return client

    def build(self, m: OutboundMessage) -> EmailMessage:
        sender = self.options.from_
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = formataddr((m.recipient_name, m.recipient)) if m.recipient_name else m.recipient
        msg["Subject"] = m.subject or ""
        domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
        msg["Message-ID"] = make_msgid(idstring=f"d{m.delivery_id}", domain=domain)
        msg["Date"] = format_datetime(datetime.now(timezone.utc))  # RFC 5322 requires it
        msg["X-Notifier-Delivery"] = str(m.delivery_id)
        msg.set_content(m.body, charset="utf-8")
        if m.html:
            msg.add_alternative(m.html, subtype="html", charset="utf-8")
        return msg

    async def send(self, message: OutboundMessage) -> SendResult:
        msg = self.build(message)
        while True:
            try:
                client, reused = await self.pool.acquire()
            except (OSError, aiosmtplib.SMTPException) as exc:
                s = self.options
                raise TransientError(
                    f"cannot connect to SMTP server {s.host}:{s.port}: {exc}", self.name, code="connect"
                ) from None
            try:
                client.message_written = False
                _, response = await client.send_message(msg)
            except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as exc:
                raise self._refused(exc, message) from None
            except _LOST as exc:
                client.close()
                if reused and not client.message_written:  # an idle connection the server had dropped
                    continue  # once more, fresh
                raise self._lost(exc, client.message_written) from None
            except (
                aiosmtplib.SMTPException
            ) as exc:  # e.g. the server lacks SMTPUTF8: trying again cannot help
                raise PermanentError(f"SMTP error: {exc}", self.name, code="smtp") from None
            finally:
                self.pool.release(client)
            return SendResult(DeliveryStatus.SENT, msg["Message-ID"], {"response": response})

    def _lost(self, exc: BaseException, written: bool) -> ProviderError:
        if written:  # the server may have taken it before the connection dropped
            return AmbiguousError(
                f"SMTP connection lost after the message was sent: {exc}", self.name, code="connection"
            )
        return TransientError(
            f"SMTP connection lost before the message was sent: {exc}", self.name, code="connection"
        )

    def _refused(
        self,
        exc: aiosmtplib.SMTPRecipientsRefused | aiosmtplib.SMTPResponseException,
        message: OutboundMessage,
    ) -> ProviderError:
        """An answer, at any step: the server decided (4xx: not now, 5xx: never)."""
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            code = exc.recipients[0].code if exc.recipients else 550
            text = f"recipient {mask_email(message.recipient)} refused: {code}"
        else:
            code, text = exc.code, f"SMTP server answered {exc.code} {exc.message}"
        return ProviderError.classify(code < 500, text, self.name, code=str(code))

    async def close(self) -> None:
        await self.pool.close()

    def describe(self) -> str:
        return f"smtp ({self.options.host}:{self.options.port})"
