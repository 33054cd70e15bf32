"""Sending SMS through Aliyun SMS (dysmsapi 2017-05-25) with the official SDK, and the lookup
reconciliation uses to ask whether a message whose answer was lost was taken.

Aliyun sends only registered templates under an approved signature: a message carries its
template code, signature and variables (`OutboundMessage.templates["aliyun"]`, rendered when the
run was created); the stored body is what the registered text gives with those variables, which
`rules check` proves. One message is `SendSms` with OutId = our delivery id; several (same
template and signature) are one `SendBatchSms` of up to 100 numbers, which Aliyun accepts or
refuses as a whole, with one BizId and one OutId for the call; a batch refused for good (which
may be one number's fault) is sent again one SendSms per number, so each settles on its own.

The SDK is blocking (requests underneath), so every call runs in a worker thread: the event loop
keeps serving while Aliyun answers. SDK retries are off (the dispatcher owns retries); a read
timeout is ambiguous (Aliyun may have sent), a refused connection is transient.

Our message id is `OutId:number`: receipts (SmsReport) and QuerySendDetails both carry the OutId
and the number, so a receipt and a lookup find the delivery even when the answer with the BizId
was lost, and every member of a batch has an id of its own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from alibabacloud_dysmsapi20170525 import models as sms
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi import models as openapi
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
from darabonba.runtime import RuntimeOptions
from Tea.exceptions import TeaException, UnretryableException

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
from .codes import DETAIL_STATUS, OK, Kind, kind_of, reason
from .settings import AliyunSettings

KIND = "aliyun"
MAX_BATCH = 100  # SendBatchSms takes at most 100 numbers
BEIJING = ZoneInfo("Asia/Shanghai")  # Aliyun's SendDate is a Beijing date
PAGE = 50  # QuerySendDetails page size (its maximum)


def number(recipient: str) -> str:
    """Our E.164 number as Aliyun takes it: mainland numbers without +86, others as 00 + code."""
    if recipient.startswith("+86"):
        return recipient[3:]
    return "00" + recipient[1:] if recipient.startswith("+") else recipient


def message_id(out_id: str, phone: str) -> str:
    """Our id of one Aliyun message: its call's OutId and its number (see the module docstring)."""
    return f"{out_id}:{phone}"


def _check(s: AliyunSettings, name: str) -> None:
    where = f"[providers.{name}]"
    if not s.access_key_id or not s.access_key_secret:
        raise ConfigError(
            f"{where} needs access_key_id and access_key_secret (write them as env:NAME, or set "
            "ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET)"
        )
    if s.protocol not in ("http", "https"):
        raise ConfigError(f"{where} protocol must be https (or http for a local server), not {s.protocol!r}")
    if s.timeout <= 0 or s.connect_timeout <= 0:
        raise ConfigError(f"{where} timeout and connect_timeout must be positive")


class AliyunProvider(Provider):
    kind = KIND
    can_lookup = True
    max_batch = MAX_BATCH
    channels = frozenset({Channel.SMS})
    settings_class = AliyunSettings
    options: AliyunSettings

    def configure(self) -> None:
        _check(self.options, self.name)
        self._client: Client | None = None
        # `batch = false` sends one SendSms per message: the dispatcher must then take one
        # slot of the rate limit per message, not one per group of MAX_BATCH.
        self.max_batch = MAX_BATCH if self.options.batch else 1

    @property
    def timeout(self) -> float:
        return self.options.timeout

    def _runtime(self) -> RuntimeOptions:
        return RuntimeOptions(
            autoretry=False,
            max_attempts=0,
            connect_timeout=int(self.options.connect_timeout * 1000),
            read_timeout=int(self.options.timeout * 1000),
        )

    async def open(self) -> None:
        if self._client is None:
            config = openapi.Config(
                access_key_id=self.options.access_key_id,
                access_key_secret=self.options.access_key_secret,
                endpoint=self.options.endpoint,
                protocol=self.options.protocol,
                connect_timeout=int(self.options.connect_timeout * 1000),
                read_timeout=int(self.options.timeout * 1000),
            )
            self._client = Client(config)

    async def close(self) -> None:
        self._client = None  # the SDK's pooled sessions are shared and need no closing

    async def _opened(self) -> Client:
        await self.open()
        assert self._client is not None
        return self._client

    def _template(self, message: OutboundMessage) -> TemplateCall:
        call = message.templates.get(self.kind)
        if call is None:
            raise PermanentError(
                f"delivery {message.delivery_id}: the rule has no registered Aliyun template "
                "(sms_templates.aliyun in the rule file) / 规则未配置阿里云短信模板",
                self.name,
                code="no_template",
            )
        return call

    # -- sending --------------------------------------------------------------------------
    async def send(self, message: OutboundMessage) -> SendResult:
        call = self._template(message)
        client = await self._opened()
        phone, out_id = number(message.recipient), str(message.delivery_id)
        request = sms.SendSmsRequest(
            phone_numbers=phone,
            sign_name=call.sign,
            template_code=call.code,
            template_param=json.dumps(dict(call.params), ensure_ascii=False),
            out_id=out_id,
        )
        body = await self._call(client.send_sms_with_options, request, [message.recipient])
        return SendResult(
            DeliveryStatus.SENT,
            message_id(out_id, phone),
            {"biz_id": body.biz_id, "request_id": body.request_id, "out_id": out_id},
        )

    async def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult | ProviderError]:
        """One SendBatchSms per run of messages with one template and signature and no number
        twice (a number twice would share one message id): Aliyun takes or refuses a call as a
        whole, so every member gets the call's answer. A message without a template gets its own
        PermanentError. An error raised concerns the whole (first) request. With `batch = false`
        each message is a SendSms of its own."""
        if not self.options.batch:
            return await super().send_batch(messages)
        out: dict[int, SendResult | ProviderError] = {}
        groups: list[tuple[TemplateCall, list[tuple[int, OutboundMessage]]]] = []
        open_groups: dict[tuple[str, str], list[tuple[list[tuple[int, OutboundMessage]], set[str]]]] = {}
        for i, m in enumerate(messages):
            try:
                call = self._template(m)
            except PermanentError as exc:
                out[i] = exc
                continue
            phone, candidates = number(m.recipient), open_groups.setdefault((call.code, call.sign), [])
            found = next((g for g in candidates if len(g[0]) < MAX_BATCH and phone not in g[1]), None)
            if found is None:
                found = ([], set())
                candidates.append(found)
                groups.append((call, found[0]))
            found[0].append((i, m))
            found[1].add(phone)
        for n, (_, group) in enumerate(groups):
            try:
                results = await self._send_group([m for _, m in group])
            except ProviderError as exc:
                if n == 0 and len(groups) == 1 and not out:
                    raise
                results = [exc] * len(group)
            out.update({i: r for (i, _), r in zip(group, results, strict=True)})
        return [out[i] for i in range(len(messages))]

    async def _send_group(self, group: list[OutboundMessage]) -> list[SendResult | ProviderError]:
        if len(group) == 1:
            return [await self.send(group[0])]
        calls = [self._template(m) for m in group]
        client = await self._opened()
        phones = [number(m.recipient) for m in group]
        out_id = f"b{group[0].delivery_id}"
        request = sms.SendBatchSmsRequest(
            phone_number_json=json.dumps(phones),
            sign_name_json=json.dumps([c.sign for c in calls], ensure_ascii=False),
            template_code=calls[0].code,
            template_param_json=json.dumps([dict(c.params) for c in calls], ensure_ascii=False),
            out_id=out_id,
        )
        try:
            body = await self._call(client.send_batch_sms_with_options, request, [m.recipient for m in group])
        except PermanentError:
            # Refused as a whole for what may be one member's fault (an illegal number, an
            # over-long variable): nothing was sent, so each member goes on its own and
            # settles on its own.
            return list(await asyncio.gather(*(self._one(m) for m in group)))
        raw = {"biz_id": body.biz_id, "request_id": body.request_id, "out_id": out_id, "batch": len(group)}
        return [SendResult(DeliveryStatus.SENT, message_id(out_id, p), raw) for p in phones]

    async def _one(self, message: OutboundMessage) -> SendResult | ProviderError:
        try:
            return await self.send(message)
        except ProviderError as exc:
            return exc

    async def _call(self, method: Any, request: Any, recipients: list[str]) -> Any:
        """One SDK call in a worker thread; its body when Code is OK, else the error it means."""
        try:
            response = await asyncio.to_thread(method, request, self._runtime())
        except AlibabaCloudException as exc:  # an HTTP 4xx / 5xx answer
            raise self._refusal(
                str(exc.code or ""), int(exc.status_code or 0), exc.message, exc.data, recipients
            ) from None
        except UnretryableException as exc:  # no answer: what reached Aliyun?
            raise self._transport_error(exc.inner_exception) from None
        except TeaException as exc:
            raise PermanentError(f"Aliyun SDK error: {exc.message}", self.name, code="client") from None
        body = response.body
        if body is None or body.code != OK:
            code = str(getattr(body, "code", "") or "")
            raw = body.to_map() if body is not None else {}
            raise self._refusal(code, int(response.status_code or 200), raw.get("Message"), raw, recipients)
        return body

    def _refusal(
        self, code: str, status: int, detail: str | None, raw: Any, recipients: list[str]
    ) -> ProviderError:
        kind = kind_of(code, status)
        to = ", ".join(mask_phone(r) for r in recipients[:3]) + (" …" if len(recipients) > 3 else "")
        text = f"{reason(code, status)} [{code or status}]; to {to}"
        if detail:
            text += f": {mask_text(detail)}"
        raw = raw if isinstance(raw, dict) else {"detail": str(raw)}
        raw = {"status": status, "code": code} | raw
        error: type[ProviderError] = {
            Kind.ACCOUNT: AccountError,
            Kind.TRANSIENT: TransientError,
            Kind.PERMANENT: PermanentError,
        }[kind]
        return error(text, self.name, code=code or str(status), raw=raw)

    def _transport_error(self, exc: BaseException | None) -> ProviderError:
        """A call that got no (readable) answer: did the request get there?"""
        detail = str(getattr(exc, "message", None) or exc)
        if "Read timed out" in detail:
            return AmbiguousError(
                f"Aliyun did not answer within {self.timeout:g}s; the message may have been "
                "accepted / 超时，短信可能已发出",
                self.name,
                code="timeout",
            )
        if any(w in detail for w in ("NewConnectionError", "ConnectTimeout", "Connection refused")):
            return TransientError(f"cannot connect to Aliyun: {detail}", self.name, code="connect")
        return AmbiguousError(
            f"Aliyun connection failed: {exc.__class__.__name__}: {detail}", self.name, code="connection"
        )

    # -- reconciliation -------------------------------------------------------------------
    async def lookup(self, message: OutboundMessage, since: datetime) -> SendResult | None:
        """Did Aliyun take this message? QuerySendDetails for the number on each (Beijing) day
        since `since`, matched by OutId (a single send) or by template and text (a batch member)."""
        call = self._template(message)
        client = await self._opened()
        phone = number(message.recipient)
        day = since.astimezone(BEIJING).date()
        today = datetime.now(BEIJING).date()
        texts = {message.body, f"【{call.sign}】{message.body}"}
        while day <= today:
            page = 1
            while True:
                request = sms.QuerySendDetailsRequest(
                    phone_number=phone, send_date=day.strftime("%Y%m%d"), page_size=PAGE, current_page=page
                )
                try:
                    body = await self._call(
                        client.query_send_details_with_options, request, [message.recipient]
                    )
                except ProviderError as exc:
                    raise TransientError(
                        f"cannot look the message up at Aliyun: {exc.message}", self.name, code="lookup"
                    ) from None
                dtos = body.sms_send_detail_dtos.sms_send_detail_dto if body.sms_send_detail_dtos else []
                for d in dtos or []:
                    mine = d.out_id == str(message.delivery_id) or (
                        d.template_code == call.code and d.content in texts
                    )
                    if mine:
                        status = DETAIL_STATUS.get(int(d.send_status or 1), DeliveryStatus.SENT)
                        return SendResult(
                            DeliveryStatus.SENT,
                            message_id(d.out_id or "", phone),
                            {"send_status": d.send_status, "status": status.value, "reconciled": True},
                        )
                if not dtos or page * PAGE >= int(body.total_count or 0):
                    break
                page += 1
            day += timedelta(days=1)
        return None

    def describe(self) -> str:
        return f"aliyun ({self.options.protocol}://{self.options.endpoint})"
