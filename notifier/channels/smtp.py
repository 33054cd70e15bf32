"""`smtp`: e-mail through any SMTP server with aiosmtplib, over a small pool of reused
connections. UTF-8 subject and body (RFC 2047 / MIME), plain text with an HTML alternative
where the template has one.

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
import re
from email.message import EmailMessage
from email.utils import formataddr, make_msgid, parseaddr
from pathlib import Path
from typing import Any

import aiosmtplib
from aiosmtplib import SMTPResponse, SMTPStatus

from ..errors import AmbiguousError, PermanentError, ProviderError, TransientError
from ..masking import mask_email
from ..status import Channel, DeliveryStatus
from .base import OutboundMessage, Provider, SendResult

_LINE_END = re.compile(rb"\r\n|\n|\r(?!\n)")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_LOST = (OSError, asyncio.TimeoutError, aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError)


class _Connection(aiosmtplib.SMTP):
    """aiosmtplib's client with DATA in two steps, so it knows whether the message itself was
    written: until then a lost connection cannot have delivered anything."""

    message_written = False

    async def data(
        self, message: str | bytes, /, *, timeout: Any = aiosmtplib.typing.Default.token
    ) -> SMTPResponse:
        start = await self.execute_command(b"DATA", timeout=timeout)
        if start.code != SMTPStatus.start_input:
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        if self.protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        raw = _LINE_END.sub(b"\r\n", message.encode("ascii") if isinstance(message, str) else message)
        raw += b"" if raw.endswith(b"\r\n") else b"\r\n"
        # No await between writing and reading the answer: it cannot arrive unseen.
        self.protocol.write(_LEADING_DOT.sub(b"..", raw) + b".\r\n")
        self.message_written = True
        try:
            response = await self.protocol.read_response(
                timeout=self.timeout if timeout is aiosmtplib.typing.Default.token else timeout
            )
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
            self.close()
            raise
        if response.code != SMTPStatus.completed:
            raise aiosmtplib.SMTPDataError(response.code, response.message)
        return response


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
        self._idle: asyncio.Queue[_Connection] = asyncio.Queue()
        self._made = 0
        self._lock = asyncio.Lock()

    async def _connect(self) -> _Connection:
        client = _Connection(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=self.use_tls,
            start_tls=self.starttls,
        )
        await client.connect()
        if self.username:
            await client.login(self.username, self.password or "")
        return client

    async def _acquire(self) -> tuple[_Connection, bool]:
        """A connection, and whether it was reused from the pool (it may have been dropped since)."""
        async with self._lock:
            if self._idle.empty() and self._made < self.pool_size:
                self._made += 1
                try:
                    return await self._connect(), False
                except Exception:
                    self._made -= 1
                    raise
        return await self._idle.get(), True

    def _release(self, client: _Connection) -> None:
        """Back to the pool while still connected (after a refusal aiosmtplib has sent RSET);
        otherwise gone, so the next message gets a fresh connection."""
        if client.is_connected:
            self._idle.put_nowait(client)
        else:
            self._made -= 1
            client.close()

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
        while True:
            try:
                client, reused = await self._acquire()
            except (OSError, aiosmtplib.SMTPException) as exc:
                raise TransientError(
                    f"cannot connect to SMTP server {self.host}:{self.port}: {exc}", self.name, code="connect"
                ) from None
            try:
                client.message_written = False
                errors, response = await client.send_message(msg)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                code = exc.recipients[0].code if exc.recipients else 550
                raise ProviderError.classify(
                    code < 500,
                    f"recipient {mask_email(message.recipient)} refused: {code}",
                    self.name,
                    code=str(code),
                ) from None
            except aiosmtplib.SMTPResponseException as exc:  # an answer, at any step: the server decided
                raise ProviderError.classify(
                    exc.code < 500,
                    f"SMTP server answered {exc.code} {exc.message}",
                    self.name,
                    code=str(exc.code),
                ) from None
            except _LOST as exc:
                client.close()
                if client.message_written:  # the server may have taken it before the connection dropped
                    raise AmbiguousError(
                        f"SMTP connection lost after the message was sent: {exc}",
                        self.name,
                        code="connection",
                    ) from None
                if reused:  # an idle connection the server had dropped: once more, fresh
                    continue
                raise TransientError(
                    f"SMTP connection lost before the message was sent: {exc}", self.name, code="connection"
                ) from None
            except (
                aiosmtplib.SMTPException
            ) as exc:  # e.g. the server lacks SMTPUTF8: trying again cannot help
                raise PermanentError(f"SMTP error: {exc}", self.name, code="smtp") from None
            finally:
                self._release(client)
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
