"""Tencent Cloud SMS's callbacks: status reports and residents' replies, as provider-neutral events.

Tencent signs neither: a push is believed only on a secret token, the last part of the URL set in
the SMS console (`https://HOST/tencent/status/<token>`, `.../tencent/inbound/<token>`), compared in
constant time with each configured account's `callback_token`, and, where `source_networks` are
configured, only from those networks. Anything else is refused (403) and touches nothing.

A status callback is a JSON array of reports (user_receive_time, nationcode, mobile,
report_status SUCCESS / FAIL, errmsg, description, sid); each finds its delivery by `sid`, the
SerialNo SendSms returned. A reply callback is one JSON object (mobile, nationcode, text, sign,
time, extend); 退订 / TD puts the number on the opt-out list (optouts.py). Both are answered
`{"result":0,"errmsg":"OK"}`, as Tencent expects. Believed but malformed pushes are InputErrors
(400) saying what is wrong.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import ConfigError, InputError
from ...masking import mask_phone
from ..base import DeliveryEvent, InboundMessage
from ..webhooks import (
    Hook,
    Network,
    PathTokens,
    Refusal,
    Reply,
    Verified,
    WebhookRequest,
    Webhooks,
    from_networks,
)
from .codes import CARRIER_REASONS, TENCENT_STATUS
from .settings import TencentSettings

log = logging.getLogger("notifier.web")

JSON = "application/json"
ACK = Reply('{"result":0,"errmsg":"OK"}', JSON)


def networks(values: Sequence[str], name: str, where: str) -> list[Network]:
    """The configured source networks; ConfigError naming the one that is not a network."""
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ConfigError(
                f"{where}: [providers.{name}] source_networks: {value!r} is not an address or network"
            ) from None
    return out


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def report_event(report: Any, provider: str = "tencent") -> DeliveryEvent:
    """One status report as a DeliveryEvent; InputError names the field missing or wrong."""
    if not isinstance(report, dict):
        raise InputError("status report must be a JSON object")
    fields = {str(k): _text(v) for k, v in report.items()}
    status = fields.get("report_status", "").strip().upper()
    if not status:
        raise InputError("status report without report_status")
    if status not in TENCENT_STATUS:
        raise InputError(
            f"status report with unknown report_status {status!r}; known: {', '.join(TENCENT_STATUS)}"
        )
    sid = fields.get("sid", "").strip()
    if not sid:
        raise InputError("status report without sid")
    failed = TENCENT_STATUS[status] is not TENCENT_STATUS["SUCCESS"]
    code = fields.get("errmsg", "").strip() or None
    return DeliveryEvent(
        provider=provider,
        message_id=sid,
        delivery_id=None,
        status=TENCENT_STATUS[status],
        provider_status=status,
        error_code=code if failed else None,
        reason=(CARRIER_REASONS.get(code or "") or fields.get("description") or None) if failed else None,
        raw=fields,
    )


class TencentWebhooks(Webhooks):
    kind = "tencent"
    inbound_reply = ACK
    status_reply = ACK

    def __init__(
        self, tables: Mapping[str, Mapping[str, Any]], problems: Sequence[str] = (), where: str = "config"
    ) -> None:
        super().__init__(tables, problems, where)
        self._accounts = PathTokens()
        for name, table in tables.items():
            try:
                s = TencentSettings.from_table(table, name, where)
                allowed = networks(s.source_networks, name, where)
            except ConfigError as exc:
                self.problems.append(exc.message)
                continue
            if s.callback_token:
                self._accounts.add(name, s.callback_token, allowed)

    def routes(self) -> dict[str, Hook]:
        """The token is the last part of the path; the bare paths exist only to refuse (403)."""
        out: dict[str, Hook] = {}
        for hook in (Hook.STATUS, Hook.INBOUND):
            out[f"/{self.kind}/{hook.value}"] = hook
            out[f"/{self.kind}/{hook.value}/{{token}}"] = hook
        return out

    @property
    def why_disabled(self) -> str:
        if self._accounts:
            return ""
        problem = f" ({self.problems[0]})" if self.problems else ""
        return f"Tencent callbacks are disabled: no [providers.tencent] callback_token{problem}"

    def _account(self, request: WebhookRequest) -> str | Refusal:
        prefix, _, token = request.path.rstrip("/").rpartition("/")
        if prefix not in (f"/{self.kind}/status", f"/{self.kind}/inbound") or not token:
            return Refusal(403, "missing callback token: only Tencent may call this endpoint")
        found = self._accounts.find(token)
        if found is None:
            log.warning("refused %s/...: unknown callback token from %s", prefix, request.client or "?")
            return Refusal(403, "invalid callback token")
        name, allowed = found
        if allowed and not from_networks(request.client, allowed):
            log.warning("refused %s/...: source %s not in source_networks", prefix, request.client or "?")
            return Refusal(403, "source address not allowed")
        return name

    def verify(self, request: WebhookRequest) -> Verified | Refusal:
        account = self._account(request)
        if isinstance(account, Refusal):
            return account
        if request.content_type != JSON:
            return Refusal(400, f"expected a {JSON} body, got {request.content_type or 'none'}")
        try:
            body = json.loads(request.body.decode("utf-8"))
        except ValueError as exc:  # UnicodeDecodeError included
            return Refusal(400, f"cannot read the JSON body: {exc}")
        if isinstance(body, dict):  # a reply (one object)
            return Verified(account, {str(k): _text(v) for k, v in body.items()})
        if isinstance(body, list):  # status reports: parsed from the body in parse_status
            return Verified(account, {})
        return Refusal(400, "expected a JSON array of reports or a JSON object")

    def parse_status(self, verified: Verified, request: WebhookRequest) -> list[DeliveryEvent]:
        body = json.loads(request.body.decode("utf-8"))  # verify has read it
        reports = body if isinstance(body, list) else [body]
        if not reports:
            raise InputError("status callback with no reports")
        return [report_event(r, verified.provider) for r in reports]

    def parse_inbound(self, verified: Verified) -> InboundMessage:
        fields = verified.fields
        mobile = fields.get("mobile", "").strip()
        if not mobile:
            raise InputError("reply callback without mobile")
        if "text" not in fields:
            raise InputError(f"reply callback from {mask_phone(mobile)} without text")
        code = fields.get("nationcode", "").strip() or "86"
        sender = mobile if mobile.startswith("+") else f"+{code}{mobile}"
        return InboundMessage(verified.provider, sender, fields["text"], "", fields)
