"""`smtp`: e-mail through any SMTP server with aiosmtplib, over a small pool of reused
connections. UTF-8 subject and body (RFC 2047 / MIME), plain text with an HTML alternative
where the template has one. 4xx answers and dropped connections are retryable; 5xx are not.
"""
from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import formataddr, make_msgid, parseaddr
from pathlib import Path
from typing import Any

import aiosmtplib

from ..errors import ProviderError
from ..masking import mask_email
from ..status import Channel, DeliveryStatus
from .base import OutboundMessage, Provider, SendResult


class SmtpProvider(Provider):
    kind = "smtp"
    channels = frozenset({Channel.EMAIL})

    def __init__(self, name: str, settings: dict[str, Any], base_dir: Path) -> None:
        super().__init__(name, settings)
        self.host = str(settings.get("host", "127.0.0.1"))
        self.port = int(settings.get("port", 25))
        self.starttls = bool(settings.get("starttls", False))
        self.use_tls = bool(settings.get("tls", False))
        self.username = settings.get("username") or None
        self.password = settings.get("password") or None
        self.sender = str(settings.get("from") or "notice@localhost")
        self.timeout = float(settings.get("timeout", 30))
        self.pool_size = max(1, int(settings.get("connections", 4)))
        self.concurrency = self.pool_size
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._made = 0
        self._lock = asyncio.Lock()

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(hostname=self.host, port=self.port, timeout=self.timeout,
                                 use_tls=self.use_tls, start_tls=self.starttls)
        await client.connect()
        if self.username:
            await client.login(self.username, self.password or "")
        return client

    async def _acquire(self) -> aiosmtplib.SMTP:
        async with self._lock:
            if self._idle.empty() and self._made < self.pool_size:
                self._made += 1
                try:
                    return await self._connect()
                except Exception:
                    self._made -= 1
                    raise
        return await self._idle.get()

    def build(self, m: OutboundMessage) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = formataddr((m.recipient_name, m.recipient)) if m.recipient_name else m.recipient
        msg["Subject"] = m.subject or ""
        domain = parseaddr(self.sender)[1].rpartition("@")[2] or "localhost"
        msg["Message-ID"] = make_msgid(idstring=f"d{m.delivery_id}", domain=domain)
        msg["X-Notifier-Delivery"] = str(m.delivery_id)
        msg.set_content(m.body, charset="utf-8")
        if m.html:
            msg.add_alternative(m.html, subtype="html", charset="utf-8")
        return msg

    async def send(self, message: OutboundMessage) -> SendResult:
        msg = self.build(message)
        try:
            client = await self._acquire()
        except (OSError, aiosmtplib.SMTPException) as exc:
            raise ProviderError(f"cannot connect to SMTP server {self.host}:{self.port}: {exc}", self.name, True, "connect") from None
        healthy = True
        try:
            errors, response = await client.send_message(msg)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            code = exc.recipients[0].code if exc.recipients else 550
            raise ProviderError(f"recipient {mask_email(message.recipient)} refused: {code}", self.name, code < 500, str(code)) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise ProviderError(f"SMTP server answered {exc.code} {exc.message}", self.name, exc.code < 500, str(exc.code)) from None
        except (OSError, asyncio.TimeoutError, aiosmtplib.SMTPException) as exc:
            # The server may have taken the message before the connection dropped.
            healthy = False
            raise ProviderError(f"SMTP connection failed mid-send: {exc}", self.name, False, "connection",
                                ambiguous=True) from None
        finally:
            if healthy:
                self._idle.put_nowait(client)
            else:
                self._made -= 1
                client.close()
        return SendResult(DeliveryStatus.SENT, msg["Message-ID"], {"response": response})

    async def close(self) -> None:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
        self._made = 0

    def describe(self) -> str:
        return f"smtp ({self.host}:{self.port})"
