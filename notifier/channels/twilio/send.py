"""Sending SMS through Twilio's Messages API with the official `twilio` package (async client),
and the lookup reconciliation uses to ask whether a message whose answer was lost was taken.

One aiohttp session per provider, opened in open() and closed in close(). `base_url` points the
client at a Twilio-compatible server (tests, a local gateway) by replacing the base URL of the
`api` domain, the only domain Messages uses, so every URL the client builds (create, fetch,
paging) goes there. Chinese text is sent unchanged; Twilio counts UCS-2 segments itself.

Errors: 429 / 20429, 5xx, timeouts and connection errors are retryable; other 4xx (invalid or
non-mobile number, unsubscribed, region not enabled, bad credentials) are permanent. A timeout
is ambiguous: Twilio may have accepted the message before the answer was lost (code "timeout").
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.rest import Client

from ...errors import AmbiguousError, ConfigError, PermanentError, ProviderError, TransientError
from ...masking import mask_phone, mask_text
from ...status import Channel, DeliveryStatus
from ..base import OutboundMessage, Provider, SendResult
from .codes import AUTH_FAILED, refusal_reason, retryable
from .http import HttpClient
from .settings import TwilioSettings

_TRANSPORT = (asyncio.TimeoutError, aiohttp.ClientError, OSError, TwilioException)
"""What a call can raise besides Twilio's own refusals (timeouts, connection errors, client bugs)."""


def _check(s: TwilioSettings, name: str) -> None:
    """What sending needs, said before the first message (webhooks need only the auth token)."""
    where = f"[providers.{name}]"
    if not s.account_sid or not s.auth_token:
        raise ConfigError(
            f"{where} needs account_sid and auth_token "
            "(or the environment variables TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)"
        )
    if not s.from_ and not s.messaging_service_sid:
        raise ConfigError(f"{where} needs `from` or `messaging_service_sid`")
    if s.base_url and not urlsplit(s.base_url).scheme.startswith("http"):
        raise ConfigError(f"{where} base_url must be an http(s) URL, not {s.base_url!r}")


class TwilioProvider(Provider):
    kind = "twilio"
    can_lookup = True
    channels = frozenset({Channel.SMS})
    settings_class = TwilioSettings
    options: TwilioSettings

    def configure(self) -> None:
        _check(self.options, self.name)
        self.base_url = self.options.base_url.rstrip("/")
        self._http: HttpClient | None = None
        self._client: Client | None = None

    @property
    def timeout(self) -> float:
        return self.options.timeout

    async def open(self) -> None:
        if self._client is not None:
            return
        # Built inside the running loop: the aiohttp session belongs to it.
        self._http = HttpClient(timeout=self.timeout)
        client = Client(self.options.account_sid, self.options.auth_token, http_client=self._http)
        if self.base_url:
            client.api.base_url = self.base_url
            # TWILIO_EDGE / TWILIO_REGION in the environment would rewrite the host name.
            client.edge = client.region = None
        self._client = client

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        self._http = self._client = None

    async def _opened(self) -> Client:
        await self.open()
        assert self._client is not None
        return self._client

    async def lookup(self, message: OutboundMessage, since: datetime) -> SendResult | None:
        """Did Twilio take this message? Lists messages to the recipient sent since `since` and
        compares the text: the reconciliation of a send whose answer was lost."""
        client = await self._opened()
        try:
            found = await client.messages.list_async(to=message.recipient, date_sent_after=since)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise self._rest_error(exc, message) from None
        except _TRANSPORT as exc:  # a page that could not be fetched, a timeout, a lost connection
            detail = exc if isinstance(exc, TwilioException) else exc.__class__.__name__
            raise TransientError(f"cannot list Twilio messages: {detail}", self.name, code="lookup") from None
        for m in found:
            if m.body == message.body:
                return SendResult(DeliveryStatus.SENT, m.sid, {"status": m.status, "reconciled": True})
        return None

    def status_callback(self, delivery_id: int) -> str | None:
        """The receipt URL, tagged with the delivery id so a receipt finds its row even if the
        SID was never recorded (a crash between Twilio's answer and our commit)."""
        url = self.options.status_callback_url
        if not url:
            return None
        return f"{url}{'&' if urlsplit(url).query else '?'}{urlencode({'d': delivery_id})}"

    async def send(self, message: OutboundMessage) -> SendResult:
        client = await self._opened()
        kwargs: dict[str, Any] = {"to": message.recipient, "body": message.body}
        if self.options.from_:
            kwargs["from_"] = self.options.from_
        if self.options.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.options.messaging_service_sid
        callback = self.status_callback(message.delivery_id)
        if callback:
            kwargs["status_callback"] = callback
        try:
            sent = await client.messages.create_async(**kwargs)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise self._rest_error(exc, message) from None
        except _TRANSPORT as exc:
            raise self._transport_error(exc) from None
        segments = sent.num_segments
        return SendResult(
            DeliveryStatus.SENT,
            sent.sid,
            {"status": sent.status, "num_segments": int(segments) if str(segments).isdigit() else segments},
        )

    def _transport_error(self, exc: BaseException) -> ProviderError:
        """A create that got no answer from Twilio: did the request get there?"""
        if isinstance(exc, asyncio.TimeoutError):
            return AmbiguousError(
                f"Twilio did not answer within {self.timeout:g}s; the message may have been "
                f"accepted / 超时，短信可能已发出",
                self.name,
                code="timeout",
            )
        if isinstance(exc, aiohttp.ClientConnectorError):  # nothing reached Twilio
            return TransientError(f"cannot connect to Twilio: {exc}", self.name, code="connect")
        if isinstance(exc, (aiohttp.ClientError, OSError)):
            return AmbiguousError(
                f"Twilio connection failed: {exc.__class__.__name__}: {exc}", self.name, code="connection"
            )
        return PermanentError(f"Twilio client error: {exc}", self.name, code="client")

    def _rest_error(
        self, exc: TwilioRestException | TwilioServiceException, message: OutboundMessage
    ) -> ProviderError:
        status = int(exc.status)
        code = int(exc.code) if exc.code is not None else status
        if isinstance(exc, TwilioRestException):
            detail = exc.msg
            raw = {"status": status, "code": code, "message": exc.msg, "details": exc.details}
        else:
            detail = exc.detail or exc.title
            raw = {
                "status": status,
                "code": code,
                "title": exc.title,
                "detail": exc.detail,
                "errors": exc.errors,
            }
        text = f"{refusal_reason(status, code)} [{code}]; to {mask_phone(message.recipient)}"
        if code != AUTH_FAILED and detail:
            text += f": {mask_text(detail)}"  # Twilio quotes the number
        return ProviderError.classify(retryable(status, code), text, self.name, code=str(code), raw=raw)

    def describe(self) -> str:
        sender = self.options.from_ or self.options.messaging_service_sid
        return f"twilio ({self.base_url or 'api.twilio.com'}, from {sender})"
