"""Aliyun SMS's pushes (HTTP batch push): delivery receipts (SmsReport) and residents' replies
(SmsUp), as provider-neutral events.

Aliyun POSTs a JSON array of items to the URL configured in its console and expects
`{"code":0,"msg":"成功"}` back (anything else: it pushes again). The pushes carry no signature, so
they are believed only on a secret path token: the console URL is
`https://HOST/aliyun/status/<receipt_token>` (and `/aliyun/inbound/<receipt_token>` for
replies), the token compared in constant time with every configured Aliyun account's, and, if
`receipt_networks` is set, only from those source networks (the address of the direct peer:
behind a proxy, list the proxy). A request failing either check is refused (403) and touches
nothing.

A receipt finds its delivery by OutId (our delivery id, for a single SendSms) or by our message
id `OutId:number` (a SendBatchSms member); the number is in every item.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import ConfigError, InputError
from ..base import DeliveryEvent, InboundMessage
from ..webhooks import Hook, PathTokens, Refusal, Reply, Verified, WebhookRequest, Webhooks, from_networks
from .codes import CARRIER_REASONS, RECEIPT_STATUS
from .send import message_id
from .settings import AliyunSettings

log = logging.getLogger("notifier.web")

ACK = Reply('{"code":0,"msg":"成功"}', "application/json")


def _items(request: WebhookRequest) -> list[dict[str, Any]] | Refusal:
    """The pushed JSON array, or why it cannot be read (400)."""
    if request.content_type not in ("application/json", "text/plain", ""):
        return Refusal(400, f"expected a JSON array, got {request.content_type}")
    try:
        items = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Refusal(400, f"cannot read the JSON body: {exc}")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return Refusal(400, "expected a JSON array of objects")
    return items


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    return "" if value is None else str(value).strip()


def report_event(item: Mapping[str, Any], provider: str) -> DeliveryEvent:
    """One SmsReport item as a DeliveryEvent; InputError names the field missing or wrong."""
    phone, out_id = _text(item, "phone_number"), _text(item, "out_id")
    if not phone:
        raise InputError("SmsReport item without phone_number")
    success = item.get("success")
    word = str(success).lower() if isinstance(success, (bool, str)) else ""
    if word not in RECEIPT_STATUS:
        raise InputError(f"SmsReport item with success {success!r}; expected true or false")
    if not out_id:
        raise InputError("SmsReport item without out_id: not a message this notifier sent")
    code = _text(item, "err_code") or None
    ok = RECEIPT_STATUS[word]
    return DeliveryEvent(
        provider=provider,
        message_id=message_id(out_id, phone),
        delivery_id=int(out_id) if out_id.isascii() and out_id.isdigit() else None,
        status=ok,
        provider_status=code or ("DELIVERED" if word == "true" else "FAILED"),
        error_code=None if word == "true" else code,
        reason=None if word == "true" else CARRIER_REASONS.get(code or "") or _text(item, "err_msg") or None,
        raw={k: str(v) for k, v in item.items()},
    )


class AliyunWebhooks(Webhooks):
    kind = "aliyun"
    inbound_reply = ACK
    status_reply = ACK

    def __init__(
        self, tables: Mapping[str, Mapping[str, Any]], problems: Sequence[str] = (), where: str = "config"
    ) -> None:
        super().__init__(tables, problems, where)
        self._tokens = PathTokens()
        for name, table in tables.items():
            try:
                s = AliyunSettings.from_table(table, name, where)
                networks = [ipaddress.ip_network(n, strict=False) for n in s.receipt_networks]
            except ConfigError as exc:
                self.problems.append(exc.message)
                continue
            except ValueError as exc:
                self.problems.append(f"{where}: [providers.{name}] receipt_networks: {exc}")
                continue
            if s.receipt_token:
                self._tokens.add(name, s.receipt_token, networks)

    def routes(self) -> dict[str, Hook]:
        return {f"/{self.kind}/{h.value}/{{token}}": h for h in (Hook.STATUS, Hook.INBOUND)}

    @property
    def why_disabled(self) -> str:
        if self._tokens:
            return ""
        problem = f" ({self.problems[0]})" if self.problems else ""
        return f"Aliyun pushes are disabled: no [providers.aliyun] receipt_token{problem}"

    def verify(self, request: WebhookRequest) -> Verified | Refusal:
        found = self._tokens.find(request.path.rstrip("/").rpartition("/")[2])
        if found is None:
            log.warning("refused %s push to %s: wrong path token", self.kind, request.path.rpartition("/")[0])
            return Refusal(403, "unknown push URL")
        name, networks = found
        if networks and not from_networks(request.client, networks):
            log.warning("refused %s push from %s: not a configured network", self.kind, request.client)
            return Refusal(403, "this address may not push Aliyun receipts")
        items = _items(request)
        if isinstance(items, Refusal):
            return items
        return Verified(name, {"items": json.dumps(items, ensure_ascii=False)})

    def parse_status(self, verified: Verified, request: WebhookRequest) -> list[DeliveryEvent]:
        return [report_event(item, verified.provider) for item in json.loads(verified.fields["items"])]

    def parse_inbound(self, verified: Verified) -> InboundMessage:
        return self.parse_inbounds(verified)[0]

    def parse_inbounds(self, verified: Verified) -> list[InboundMessage]:
        out = []
        for item in json.loads(verified.fields["items"]):
            sender = _text(item, "phone_number")
            if not sender:
                raise InputError("SmsUp item without phone_number")
            raw = {k: str(v) for k, v in item.items()}
            out.append(
                InboundMessage(
                    verified.provider, sender, _text(item, "content"), _text(item, "sequence_id"), raw
                )
            )
        if not out:
            raise InputError("SmsUp push without items")
        return out
