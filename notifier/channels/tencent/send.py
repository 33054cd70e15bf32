"""Sending SMS through Tencent Cloud SMS (API 2021-01-11) with the official SDK
(`tencentcloud.sms.v20210111`), and the lookup reconciliation uses to ask whether a message
whose answer was lost was taken.

Tencent sends only a registered template under an approved signature: a message carries its
`TemplateCall` for this kind (`message.templates["tencent"]`), whose values fill TemplateParamSet in
the template's order. One SendSms takes up to 200 numbers but one TemplateParamSet, so
`send_batch` puts the messages with the same template, signature and values into one request
(a number at most once per request) and maps the SendStatusSet back per number: "Ok" is `sent`
with the SerialNo, anything else that number's own classified error, returned, not raised.
SessionContext lists our delivery ids ("d:7" / "d:1001-1200,1305"): Tencent echoes it, and
lookup finds a message by it.

The SDK is blocking (requests): every call runs in this provider's own threads (one SDK client,
so one HTTP session, per thread), never on the event loop, under the SDK's timeout and a backstop
on our side. The SDK retries nothing here (no retryer, no region breaker): the dispatcher owns
retries. A whole request that fails is raised: no answer within the timeout, or the connection
lost after sending, is ambiguous (Tencent may have accepted it); a connection never made, an HTTP
error status or a Tencent InternalError / rate limit is transient; bad credentials, balance,
signature or template not approved are the account's (AccountError: the provider is paused).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import requests
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models
from tencentcloud.sms.v20210111.sms_client import SmsClient
from urllib3.exceptions import NewConnectionError

from ...errors import (
    AccountError,
    AmbiguousError,
    ConfigError,
    PermanentError,
    ProviderError,
    TransientError,
)
from ...masking import mask_phone, mask_text
from ...status import Channel, DeliveryStatus
from ..base import OutboundMessage, Provider, SendResult
from ..templated import TemplateCall
from .codes import OK, Code, Kind, classify
from .settings import TencentSettings

DEFAULT_ENDPOINT = "sms.tencentcloudapi.com"
logging.getLogger("tencentcloud_sdk_common").setLevel(logging.INFO)
"""The SDK logs every request and answer at DEBUG, numbers and template values included."""
MAX_CONTEXT = 511  # SessionContext must be under 512 bytes
PULL_LIMIT = 100  # PullSmsSendStatusByPhoneNumber returns at most 100 per call
KEPT = timedelta(days=7)  # how far back PullSmsSendStatusByPhoneNumber can list

_T = TypeVar("_T")


def _check(s: TencentSettings, name: str) -> None:
    """What sending needs, said before the first message (webhooks need only the token)."""
    where = f"[providers.{name}]"
    if not s.secret_id or not s.secret_key:
        raise ConfigError(
            f"{where} needs secret_id and secret_key "
            "(or the environment variables TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY)"
        )
    if not s.sdk_app_id:
        raise ConfigError(f"{where} needs sdk_app_id (the SmsSdkAppId of the SMS console's application)")
    if s.protocol not in ("http", "https"):
        raise ConfigError(f"{where} protocol must be http or https, not {s.protocol!r}")
    if "/" in s.endpoint:
        raise ConfigError(f"{where} endpoint is host[:port] (the scheme is `protocol`), not {s.endpoint!r}")
    if s.timeout <= 0:
        raise ConfigError(f"{where} timeout must be more than 0 seconds")


def e164(number: str) -> str:
    """A mainland number as Tencent documents it, +86 and 11 digits (other forms pass unchanged:
    Tencent's answer names what is wrong with them)."""
    n = number.strip().replace(" ", "").replace("-", "")
    for prefix in ("+86", "0086", "86"):
        if n.startswith(prefix) and len(n) == len(prefix) + 11:
            n = n[len(prefix) :]
            break
    return f"+86{n}" if len(n) == 11 and n.isdigit() and n.startswith("1") else number


def session_context(delivery_ids: Sequence[int]) -> str:
    """Our delivery ids as SessionContext: "d:" and ranges of consecutive ids, "d:1001-1200,1305"."""
    ids = sorted(set(delivery_ids))
    parts: list[str] = []
    start = prev = ids[0]
    for i in [*ids[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return "d:" + ",".join(parts)


def delivery_ids(context: str) -> set[int]:
    """The delivery ids a SessionContext we wrote names; empty for any other text."""
    if not context.startswith("d:"):
        return set()
    out: set[int] = set()
    for part in context[2:].split(","):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            return set()
        out.update(range(int(low), int(high or low) + 1))
    return out


@dataclass
class _Request:
    """One SendSms: messages sharing a template call (with their places in the batch), each
    number once."""

    call: TemplateCall
    messages: list[OutboundMessage] = field(default_factory=list)
    places: list[int] = field(default_factory=list)
    numbers: set[str] = field(default_factory=set)
    most: int = 2  # SessionContext's length at most: "d:" and every id written out

    @property
    def context(self) -> str:
        return session_context([m.delivery_id for m in self.messages])

    def takes(self, message: OutboundMessage, size: int) -> bool:
        if len(self.messages) >= size or e164(message.recipient) in self.numbers:
            return False
        if self.most + len(str(message.delivery_id)) + 1 <= MAX_CONTEXT:
            return True
        ids = [*(m.delivery_id for m in self.messages), message.delivery_id]
        return len(session_context(ids)) <= MAX_CONTEXT

    def add(self, place: int, message: OutboundMessage) -> None:
        self.messages.append(message)
        self.places.append(place)
        self.numbers.add(e164(message.recipient))
        self.most += len(str(message.delivery_id)) + 1


def _requests(messages: Sequence[tuple[int, OutboundMessage, TemplateCall]], size: int) -> list[_Request]:
    """Group messages that can share one SendSms: same template, signature and values; at most
    `size` numbers, each once, and a SessionContext that fits."""
    out: list[_Request] = []
    open_: dict[tuple[Any, ...], _Request] = {}
    for place, message, call in messages:
        key = (call.code, call.sign, tuple(v for _, v in call.params))
        r = open_.get(key)
        if r is None or not r.takes(message, size):
            r = open_[key] = _Request(call)
            out.append(r)
        r.add(place, message)
    return out


def _invoke(client: SmsClient, action: str, request: Any, response: Any) -> Any:
    """`action` through the SDK's generic call, reading the answer ourselves: the SDK's typed
    methods see an Error only under `Content-Type: application/json` exactly and would otherwise
    return an empty, "successful" response."""
    body = json.loads(client.call(action, request._serialize(), headers=request.headers))
    answer = body["Response"]
    if "Error" in answer:
        error = answer["Error"]
        raise TencentCloudSDKException(
            error.get("Code"), error.get("Message"), answer.get("RequestId") or "-"
        )
    response._deserialize(answer)
    return response


def _requests_error(exc: BaseException) -> requests.RequestException | None:
    """The requests exception under an SDK exception (the SDK wraps transport errors in its own)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, requests.RequestException):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class TencentProvider(Provider):
    kind = "tencent"
    can_lookup = True
    max_batch = 200
    channels = frozenset({Channel.SMS})
    settings_class = TencentSettings
    options: TencentSettings

    def configure(self) -> None:
        _check(self.options, self.name)
        self.endpoint = self.options.endpoint or DEFAULT_ENDPOINT
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._clients: list[SmsClient] = []
        self._clients_lock = threading.Lock()

    @property
    def timeout(self) -> float:
        return self.options.timeout

    async def open(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"tencent-{self.name}")
            self._local = threading.local()

    def batch_key(self, call: TemplateCall) -> tuple[str, ...]:
        """One SendSms carries one TemplateParamSet: only messages with the same values share it."""
        return (call.code, call.sign, *(value for _, value in call.params))

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.request.conn._session.close()  # the SDK has no close(); its requests session

    def _client(self) -> SmsClient:
        """This thread's SDK client (a requests session is not shared between threads)."""
        client: SmsClient | None = getattr(self._local, "client", None)
        if client is None:
            o = self.options
            http = HttpProfile(protocol=o.protocol, endpoint=self.endpoint, reqTimeout=o.timeout)
            profile = ClientProfile(httpProfile=http, disable_region_breaker=True, retryer=None)
            client = SmsClient(Credential(o.secret_id, o.secret_key), o.region, profile)
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    async def _call(self, fn: Callable[[SmsClient], _T]) -> _T:
        """`fn(client)` in one of this provider's threads, with a backstop past the SDK's timeout."""
        await self.open()
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, lambda: fn(self._client()))
        try:
            return await asyncio.wait_for(future, self.timeout * 2 + 1)
        except asyncio.TimeoutError:
            raise TencentCloudSDKException("ClientNetworkError", "no answer (backstop)") from None

    # -- sending ------------------------------------------------------------------------
    async def send(self, message: OutboundMessage) -> SendResult:
        [result] = await self.send_batch([message])
        if isinstance(result, ProviderError):
            raise result
        return result

    async def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult | ProviderError]:
        """One SendSms per group of messages that can share one (same template call); an error of
        the whole request is raised when there was one request, else returned for its messages."""
        if len(messages) > self.max_batch:
            raise ValueError(f"at most {self.max_batch} messages per batch, not {len(messages)}")
        results: dict[int, SendResult | ProviderError] = {}
        ready: list[tuple[int, OutboundMessage, TemplateCall]] = []
        for i, message in enumerate(messages):
            call = message.templates.get(self.kind)
            if call is None:
                results[i] = PermanentError(
                    f"no registered Tencent template for this notice (rule's sms_templates.tencent) / "
                    f"规则未配置腾讯云短信模板; delivery {message.delivery_id}",
                    self.name,
                    code="no_template",
                )
            else:
                ready.append((i, message, call))
        batches = _requests(ready, self.max_batch)
        paused: AccountError | None = None  # the account cannot send: the other requests are not tried
        for batch in batches:
            try:
                if paused is not None:
                    raise paused
                answered = await self._send_request(batch)
            except ProviderError as exc:
                if len(batches) == 1 and len(ready) == len(messages):
                    raise
                paused = exc if isinstance(exc, AccountError) else paused
                answered = [exc] * len(batch.messages)
            for place, result in zip(batch.places, answered, strict=True):
                results[place] = result
        return [results[i] for i in range(len(messages))]

    async def _send_request(self, batch: _Request) -> list[SendResult | ProviderError]:
        request = models.SendSmsRequest()
        request.SmsSdkAppId = self.options.sdk_app_id
        request.TemplateId = batch.call.code
        request.SignName = batch.call.sign
        request.TemplateParamSet = [value for _, value in batch.call.params]
        request.PhoneNumberSet = [e164(m.recipient) for m in batch.messages]
        request.SessionContext = batch.context
        try:
            response = await self._call(lambda c: _invoke(c, "SendSms", request, models.SendSmsResponse()))
        except TencentCloudSDKException as exc:
            raise self._request_error(exc, batch.messages) from None
        by_number: dict[str, Any] = {e164(str(s.PhoneNumber)): s for s in response.SendStatusSet or []}
        out: list[SendResult | ProviderError] = []
        for message in batch.messages:
            status = by_number.get(e164(message.recipient))
            if status is None:
                out.append(
                    AmbiguousError(
                        f"Tencent answered without a status for {mask_phone(message.recipient)} / "
                        f"腾讯云未返回该号码的发送结果",
                        self.name,
                        code="no_status",
                        raw={"request_id": response.RequestId},
                    )
                )
            elif status.Code == OK:
                raw = {"fee": status.Fee, "iso_code": status.IsoCode, "request_id": response.RequestId}
                out.append(SendResult(DeliveryStatus.SENT, status.SerialNo, raw))
            else:
                out.append(self._number_error(status, message, response.RequestId))
        return out

    # -- errors ---------------------------------------------------------------------------
    def _error(self, code: Code, text: str, tencent_code: str, raw: Any) -> ProviderError:
        kind: type[ProviderError] = {
            Kind.PERMANENT: PermanentError,
            Kind.TRANSIENT: TransientError,
            Kind.ACCOUNT: AccountError,
        }[code.kind]
        return kind(text, self.name, code=tencent_code, raw=raw)

    def _number_error(self, status: Any, message: OutboundMessage, request_id: str) -> ProviderError:
        code = str(status.Code or "")
        meaning = classify(code)
        text = f"{meaning.reason} [{code}]; to {mask_phone(message.recipient)}"
        detail = mask_text(str(status.Message or ""))
        if detail and detail != code:
            text += f": {detail}"
        raw = {"code": code, "message": detail, "request_id": request_id}
        return self._error(meaning, text, code, raw)

    def _request_error(
        self, exc: TencentCloudSDKException, messages: Sequence[OutboundMessage]
    ) -> ProviderError:
        """A SendSms (or a lookup) that got no per-number answer: what does its failure prove?"""
        code = str(exc.code or "")
        message = exc.message.decode("utf-8", "replace") if isinstance(exc.message, bytes) else exc.message
        detail = mask_text(str(message or ""))
        raw = {"code": code, "message": detail, "request_id": exc.requestId}
        to = ", ".join(mask_phone(m.recipient) for m in messages[:3]) + (" ..." if len(messages) > 3 else "")
        transport = _requests_error(exc)
        if transport is not None or code == "ClientNetworkError":
            return self._transport_error(transport, detail, raw)
        if code == "ServerNetworkError":  # an HTTP status other than 200: not processed
            return TransientError(
                f"Tencent unavailable / 腾讯云暂时不可用 (HTTP error): {detail[:200]}",
                self.name,
                code="http",
                raw=raw,
            )
        if not exc.requestId:  # not Tencent's answer: the SDK's wrapping of a failure after sending
            return AmbiguousError(
                f"Tencent's answer could not be read ({code}): {detail}", self.name, code="answer", raw=raw
            )
        meaning = classify(code)
        text = f"{meaning.reason} [{code}]; to {to}"
        if detail and detail != code:
            text += f": {detail}"
        return self._error(meaning, text, code, raw)

    def _transport_error(
        self, exc: requests.RequestException | None, detail: str, raw: dict[str, Any]
    ) -> ProviderError:
        if isinstance(exc, requests.ConnectTimeout) or (
            isinstance(exc, requests.ConnectionError)
            and isinstance(getattr(exc.args[0] if exc.args else None, "reason", None), NewConnectionError)
        ):  # nothing reached Tencent
            return TransientError(f"cannot connect to Tencent: {detail}", self.name, code="connect", raw=raw)
        if exc is None or isinstance(exc, requests.Timeout):
            return AmbiguousError(
                f"Tencent did not answer within {self.timeout:g}s; the message may have been "
                f"accepted / 超时，短信可能已发出",
                self.name,
                code="timeout",
                raw=raw,
            )
        return AmbiguousError(
            f"Tencent connection failed: {exc.__class__.__name__}: {detail}",
            self.name,
            code="connection",
            raw=raw,
        )

    # -- reconciliation -----------------------------------------------------------------
    async def lookup(self, message: OutboundMessage, since: datetime) -> SendResult | None:
        """Did Tencent take this message? Lists what was sent to the number since `since`
        (PullSmsSendStatusByPhoneNumber) and looks for our delivery id in SessionContext.

        Tencent lists the last 7 days only (an older BeginTime is refused) and takes no offset
        (Offset is "fixed at 0"). `since` is the delivery's creation, which for a run approved a
        week later is older than that: the lookup starts 7 days back at most, which still
        covers the attempt being reconciled (looked up within minutes of it; only a row left
        `sending` for a week, its sender never restarted, could have gone earlier). A full
        page of 100 may hide more, so its time window is halved until every page is whole.
        What cannot be seen proves nothing, so instead of None (which means "send again"):
        AmbiguousError for more than 100 messages to the number within one second, and for
        records without a SessionContext (Tencent returns it only where enabled)."""
        now = datetime.now(timezone.utc)
        oldest = now - KEPT + timedelta(minutes=10)
        begin = int(max(since, oldest).astimezone(timezone.utc).timestamp())
        end = int(now.timestamp()) + 60
        unmatchable, windows = 0, [(begin, end)]
        while windows:
            low, high = windows.pop()
            rows = await self._pull(message, low, high)
            for row in rows:
                context = str(row.SessionContext or "")
                if message.delivery_id in delivery_ids(context):
                    raw = {"report_status": row.ReportStatus, "description": row.Description}
                    return SendResult(DeliveryStatus.SENT, row.SerialNo, raw | {"reconciled": True})
            if len(rows) < PULL_LIMIT:
                unmatchable += sum(not row.SessionContext for row in rows)
            elif low < high:  # perhaps more than one page: look at each half
                middle = (low + high) // 2
                windows += [(middle + 1, high), (low, middle)]
            else:
                raise AmbiguousError(
                    f"Tencent lists {PULL_LIMIT} or more messages to {mask_phone(message.recipient)} "
                    "within one second; cannot see them all / 无法确认是否已发出",
                    self.name,
                    code="lookup_unmatchable",
                )
        if unmatchable:
            raise AmbiguousError(
                f"Tencent lists {unmatchable} message(s) to {mask_phone(message.recipient)} without "
                "SessionContext; cannot tell whether this one was accepted (ask Tencent to return "
                "SessionContext) / 无法确认是否已发出",
                self.name,
                code="lookup_unmatchable",
            )
        return None

    async def _pull(self, message: OutboundMessage, begin: int, end: int) -> list[Any]:
        """PullSmsSendStatusByPhoneNumber for [begin, end]; a failure is transient (look again later)."""
        request = models.PullSmsSendStatusByPhoneNumberRequest()
        request.SmsSdkAppId = self.options.sdk_app_id
        request.PhoneNumber = e164(message.recipient)
        request.BeginTime = begin
        request.EndTime = end
        request.Offset = 0
        request.Limit = PULL_LIMIT
        action, answer = "PullSmsSendStatusByPhoneNumber", models.PullSmsSendStatusByPhoneNumberResponse
        try:
            response = await self._call(lambda c: _invoke(c, action, request, answer()))
        except TencentCloudSDKException as exc:
            err = self._request_error(exc, [message])
            raise TransientError(
                f"cannot look up Tencent messages: {err.message}", self.name, code="lookup", raw=err.raw
            ) from None
        return list(response.PullSmsSendStatusSet or [])

    def describe(self) -> str:
        return f"tencent ({self.options.protocol}://{self.endpoint}, SmsSdkAppId {self.options.sdk_app_id})"
