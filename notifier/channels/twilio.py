"""`twilio`: SMS through Twilio's Messages API with the official `twilio` package (async client).

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
import base64
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from ..errors import AmbiguousError, ConfigError, PermanentError, ProviderError, TransientError
from ..masking import mask_phone, mask_text
from ..status import Channel, DeliveryStatus
from .base import OutboundMessage, Provider, SendResult

# Twilio error codes with a reason staff can read (zh / en). All are permanent for this number.
REASONS: dict[int, str] = {
    21211: "号码无效 / invalid 'To' phone number",
    21614: "不是手机号码，无法接收短信 / 'To' number is not a mobile number",
    21610: "该号码已退订短信 / recipient has unsubscribed (replied STOP)",
    21408: "未开通向该地区发送短信的权限 / permission to send SMS to this region is not enabled",
    21612: "无法从该发送号码送达此号码 / 'To' number cannot be reached from this sender",
    20003: "Twilio 认证失败，请检查 account_sid 和 auth_token / authentication failed",
    20429: "请求过多，稍后重试 / too many requests, retry later",
}


class _HttpClient(AsyncTwilioHttpClient):
    """AsyncTwilioHttpClient stores `timeout` but hands aiohttp the per-request value, which
    `create_async` leaves at None, and None there means no timeout at all: apply ours. Basic
    auth goes in as a header because aiohttp deprecates its `auth=` parameter.

    The stock client logs every request at INFO with its query string and parameters (`To=`
    when listing a resident's messages); here only the method and the path are logged, at DEBUG."""

    def log_request(self, kwargs: dict[str, Any]) -> None:
        self.logger.debug("Twilio API %s %s", kwargs["method"], urlsplit(str(kwargs["url"])).path)

    def log_response(self, status_code: int, response: Any) -> None:
        self.logger.debug("Twilio API response %s", status_code)

    async def request(
        self,
        method: str,
        url: str,
        *args: Any,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode(
                "ascii"
            )
        return await super().request(
            method, url, *args, headers=headers, timeout=timeout or self.timeout, **kwargs
        )


class TwilioProvider(Provider):
    kind = "twilio"
    can_lookup = True
    channels = frozenset({Channel.SMS})

    def __init__(self, name: str, settings: dict[str, Any], base_dir: Any = None) -> None:
        super().__init__(name, settings)
        self.account_sid = str(settings.get("account_sid") or "")
        self.auth_token = str(settings.get("auth_token") or "")
        self.sender = str(settings.get("from") or "")
        self.messaging_service_sid = str(settings.get("messaging_service_sid") or "")
        self.status_callback_url = str(settings.get("status_callback_url") or "")
        self.base_url = str(settings.get("base_url") or "").rstrip("/")
        self.timeout = float(settings.get("timeout", 10) or 10)
        where = f"[providers.{name}]"
        if not self.account_sid or not self.auth_token:
            raise ConfigError(f"{where} needs account_sid and auth_token")
        if not self.sender and not self.messaging_service_sid:
            raise ConfigError(f"{where} needs `from` or `messaging_service_sid`")
        if self.base_url and not urlsplit(self.base_url).scheme.startswith("http"):
            raise ConfigError(f"{where} base_url must be an http(s) URL, not {self.base_url!r}")
        self._http: _HttpClient | None = None
        self._client: Client | None = None

    async def open(self) -> None:
        if self._client is not None:
            return
        # Built inside the running loop: the aiohttp session belongs to it.
        self._http = _HttpClient(timeout=self.timeout)
        client = Client(self.account_sid, self.auth_token, http_client=self._http)
        if self.base_url:
            client.api.base_url = self.base_url
            # TWILIO_EDGE / TWILIO_REGION in the environment would rewrite the host name.
            client.edge = client.region = None
        self._client = client

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        self._http = self._client = None

    async def lookup(self, message: OutboundMessage, since: datetime) -> SendResult | None:
        """Did Twilio take this message? Lists messages to the recipient sent since `since` and
        compares the text: the reconciliation of a send whose answer was lost."""
        await self.open()
        assert self._client is not None
        try:
            found = await self._client.messages.list_async(to=message.recipient, date_sent_after=since)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise self._rest_error(exc, message) from None
        except TwilioException as exc:  # a page that could not be fetched (any HTTP error while listing)
            raise TransientError(f"cannot list Twilio messages: {exc}", self.name, code="lookup") from None
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise TransientError(
                f"cannot list Twilio messages: {exc.__class__.__name__}", self.name, code="lookup"
            ) from None
        for m in found:
            if m.body == message.body:
                return SendResult(DeliveryStatus.SENT, m.sid, {"status": m.status, "reconciled": True})
        return None

    def status_callback(self, delivery_id: int) -> str | None:
        """The receipt URL, tagged with the delivery id so a receipt finds its row even if the
        SID was never recorded (a crash between Twilio's answer and our commit)."""
        if not self.status_callback_url:
            return None
        sep = "&" if urlsplit(self.status_callback_url).query else "?"
        return f"{self.status_callback_url}{sep}{urlencode({'d': delivery_id})}"

    async def send(self, message: OutboundMessage) -> SendResult:
        await self.open()
        assert self._client is not None
        kwargs: dict[str, Any] = {"to": message.recipient, "body": message.body}
        if self.sender:
            kwargs["from_"] = self.sender
        if self.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.messaging_service_sid
        callback = self.status_callback(message.delivery_id)
        if callback:
            kwargs["status_callback"] = callback
        try:
            sent = await self._client.messages.create_async(**kwargs)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise self._rest_error(exc, message) from None
        except asyncio.TimeoutError:
            raise AmbiguousError(
                f"Twilio did not answer within {self.timeout:g}s; the message may have been "
                f"accepted / 超时，短信可能已发出",
                self.name,
                code="timeout",
            ) from None
        except aiohttp.ClientConnectorError as exc:  # nothing reached Twilio
            raise TransientError(f"cannot connect to Twilio: {exc}", self.name, code="connect") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise AmbiguousError(
                f"Twilio connection failed: {exc.__class__.__name__}: {exc}", self.name, code="connection"
            ) from None
        except TwilioException as exc:
            raise PermanentError(f"Twilio client error: {exc}", self.name, code="client") from None
        segments = sent.num_segments
        return SendResult(
            DeliveryStatus.SENT,
            sent.sid,
            {"status": sent.status, "num_segments": int(segments) if str(segments).isdigit() else segments},
        )

    def _rest_error(
        self, exc: TwilioRestException | TwilioServiceException, message: OutboundMessage
    ) -> ProviderError:
        status = int(exc.status)
        code = int(exc.code) if exc.code is not None else status
        retryable = status == 429 or code == 20429 or status >= 500
        if isinstance(exc, TwilioRestException):
            detail, raw = (
                exc.msg,
                {"status": status, "code": code, "message": exc.msg, "details": exc.details},
            )
        else:
            detail = exc.detail or exc.title
            raw = {
                "status": status,
                "code": code,
                "title": exc.title,
                "detail": exc.detail,
                "errors": exc.errors,
            }
        reason = REASONS.get(code) or (
            f"Twilio 暂时不可用 / Twilio unavailable (HTTP {status})"
            if status >= 500
            else f"Twilio 拒绝 / Twilio refused (HTTP {status})"
        )
        text = f"{reason} [{code}]; to {mask_phone(message.recipient)}"
        if code != 20003 and detail:
            text += f": {mask_text(detail)}"  # Twilio quotes the number
        return ProviderError.classify(retryable, text, self.name, code=str(code), raw=raw)

    def describe(self) -> str:
        sender = self.sender or self.messaging_service_sid
        return f"twilio ({self.base_url or 'api.twilio.com'}, from {sender})"
