"""Twilio's webhooks: signature check, status callbacks and inbound SMS, as provider-neutral events.

Nothing is believed before Twilio's signature is: the X-Twilio-Signature header is an HMAC (the
account's auth token) over the full URL Twilio called and the form fields, checked with the
official RequestValidator (a constant-time compare) against every configured Twilio account.
Behind a proxy that URL is not what this process sees, so web.py rebuilds it from `[serve]
public_url`, else from the `status_callback_url` we hand Twilio (`public_base`).

A status callback finds its delivery by the `d` query parameter the provider puts on the callback
URL (present even when a crash lost the SID between Twilio's answer and our commit), else by the
MessageSid. Signed but malformed requests are InputErrors (400) saying what is wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from twilio.request_validator import RequestValidator

from ...errors import ConfigError, InputError
from ..base import DeliveryEvent, InboundMessage
from ..webhooks import FORM, Refusal, Reply, Verified, WebhookRequest, Webhooks
from .codes import CARRIER_REASONS, TWILIO_STATUS
from .settings import TwilioSettings

log = logging.getLogger("notifier.web")

STATUS_PATH = "/twilio/status"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def public_base(callback_url: str) -> str:
    """https://host/prefix/twilio/status?x=1 -> https://host/prefix: where this app is mounted."""
    parts = urlsplit(callback_url)
    path = parts.path[: -len(STATUS_PATH)] if parts.path.endswith(STATUS_PATH) else ""
    return f"{parts.scheme}://{parts.netloc}{path}"


def _first(form: Mapping[str, str], *names: str) -> str:
    """The first of these fields that is set, stripped (Twilio sends both Message* and older Sms*)."""
    return next((form[n].strip() for n in names if form.get(n, "").strip()), "")


def _delivery_id(query: Mapping[str, str]) -> int | None:
    d = query.get("d") or ""
    if not d:
        return None
    if not d.isascii() or not d.isdigit():
        raise InputError(f"query parameter d must be a delivery id (digits), not {d!r}")
    return int(d)


def status_event(
    form: Mapping[str, str], query: Mapping[str, str], provider: str = "twilio"
) -> DeliveryEvent:
    """One Twilio status callback as a DeliveryEvent; InputError names the field missing or wrong."""
    sid = _first(form, "MessageSid", "SmsSid")
    status_text = _first(form, "MessageStatus", "SmsStatus").lower()
    if not status_text:
        raise InputError("status callback without MessageStatus")
    if status_text not in TWILIO_STATUS:
        raise InputError(
            f"status callback with unknown MessageStatus {status_text!r}; known: {', '.join(TWILIO_STATUS)}"
        )
    delivery_id = _delivery_id(query)
    if delivery_id is None and not sid:
        raise InputError("status callback without MessageSid and without the d=<delivery id> query parameter")
    code = _first(form, "ErrorCode") or None
    return DeliveryEvent(
        provider=provider,
        message_id=sid,
        delivery_id=delivery_id,
        status=TWILIO_STATUS[status_text],
        provider_status=status_text,
        error_code=code,
        reason=CARRIER_REASONS.get(code or ""),
        raw=dict(form),
    )


class TwilioWebhooks(Webhooks):
    kind = "twilio"
    inbound_reply = Reply(EMPTY_TWIML, "application/xml")  # TwiML: received, no answer to send

    def __init__(
        self, tables: Mapping[str, Mapping[str, Any]], problems: Sequence[str] = (), where: str = "config"
    ) -> None:
        super().__init__(tables, problems, where)
        self._validators: list[tuple[str, RequestValidator]] = []
        self._callbacks: list[str] = []
        for name, table in tables.items():
            try:
                s = TwilioSettings.from_table(table, name, where)
            except ConfigError as exc:
                self.problems.append(exc.message)
                continue
            if s.auth_token:
                self._validators.append((name, RequestValidator(s.auth_token)))
            if s.status_callback_url:
                self._callbacks.append(s.status_callback_url)

    @property
    def why_disabled(self) -> str:
        if self._validators:
            return ""
        problem = f" ({self.problems[0]})" if self.problems else ""
        return f"Twilio webhooks are disabled: no [providers.twilio] auth_token{problem}"

    def public_base(self) -> str:
        return public_base(self._callbacks[0]) if self._callbacks else ""

    def verify(self, request: WebhookRequest) -> Verified | Refusal:
        signature = request.headers.get("x-twilio-signature")
        if not signature:
            return Refusal(403, "missing X-Twilio-Signature: only Twilio may call this endpoint")
        if request.content_type != FORM:
            return Refusal(400, f"expected an {FORM} body, got {request.content_type or 'none'}")
        try:
            form = request.form()
        except ValueError as exc:  # UnicodeDecodeError included
            return Refusal(400, f"cannot read the form body: {exc}")
        for name, validator in self._validators:
            if validator.validate(request.url, form, signature):
                return Verified(name, form)
        log.warning("refused %s: bad X-Twilio-Signature for %s", request.path, request.url)
        return Refusal(403, "invalid X-Twilio-Signature")

    def parse_status(self, verified: Verified, request: WebhookRequest) -> list[DeliveryEvent]:
        return [status_event(verified.fields, request.query, verified.provider)]

    def parse_inbound(self, verified: Verified) -> InboundMessage:
        form = verified.fields
        sender = form.get("From", "").strip()
        if not sender:
            raise InputError("inbound SMS without From")
        return InboundMessage(
            verified.provider, sender, form.get("Body", ""), form.get("MessageSid", ""), form
        )
