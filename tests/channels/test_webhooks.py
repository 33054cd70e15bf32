"""The webhook security contract, for every kind in the registry that has webhooks: nothing is
believed before the provider's signature is. Each kind supplies how a genuine request is signed;
the suite checks that unsigned, forged, altered and re-targeted requests are refused, that a
genuine one is attributed to the account that signed it, and that without credentials the
webhooks say they are disabled. The full flow over HTTP is in tests/web/test_serve.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from notifier.channels.registry import KINDS
from notifier.channels.webhooks import FORM, Hook, Refusal, Verified, WebhookRequest, Webhooks

URL = "https://notice.example.gov.cn/twilio/status?d=7"
FIELDS = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered", "To": "+8613800000001"}


@dataclass(frozen=True)
class Signer:
    """How one kind's provider signs: its tables (two accounts) and a signed request builder."""

    tables: Mapping[str, Mapping[str, Any]]
    sign: Callable[[str, dict[str, str], str], WebhookRequest]  # (url, fields, secret) -> request
    secrets: Mapping[str, str]  # account name -> its secret


def _twilio_request(url: str, fields: dict[str, str], token: str) -> WebhookRequest:
    signature = RequestValidator(token).compute_signature(url, fields)
    headers = {"content-type": FORM + "; charset=utf-8", "x-twilio-signature": signature}
    return WebhookRequest(url, "/twilio/status", {"d": "7"}, headers, urlencode(fields).encode())


SIGNERS = {
    "twilio": Signer(
        {"twilio": {"auth_token": "token-one"}, "backup": {"kind": "twilio", "auth_token": "token-two"}},
        _twilio_request,
        {"twilio": "token-one", "backup": "token-two"},
    ),
}
WITH_WEBHOOKS = sorted(k for k, entry in KINDS.items() if entry.webhooks is not None)


def test_every_kind_with_webhooks_has_a_signer() -> None:
    assert WITH_WEBHOOKS == sorted(SIGNERS)


def _hooks(kind: str, tables: Mapping[str, Mapping[str, Any]]) -> Webhooks:
    cls = KINDS[kind].webhooks
    assert cls is not None
    return cls(tables)


@pytest.fixture(params=WITH_WEBHOOKS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_routes_live_under_the_kind(kind: str) -> None:
    routes = _hooks(kind, SIGNERS[kind].tables).routes()
    assert routes[f"/{kind}/status"] is Hook.STATUS and all(p.startswith(f"/{kind}/") for p in routes)


def test_a_genuine_request_is_attributed_to_the_account_that_signed_it(kind: str) -> None:
    signer = SIGNERS[kind]
    hooks = _hooks(kind, signer.tables)
    assert hooks.why_disabled == ""
    for account, secret in signer.secrets.items():
        verified = hooks.verify(signer.sign(URL, FIELDS, secret))
        assert verified == Verified(account, FIELDS)
        [event] = hooks.parse_status(verified, signer.sign(URL, FIELDS, secret))
        assert event.provider == account and event.raw == FIELDS


def test_unsigned_forged_altered_and_retargeted_requests_are_refused(kind: str) -> None:
    signer = SIGNERS[kind]
    hooks = _hooks(kind, signer.tables)
    secret = next(iter(signer.secrets.values()))
    genuine = signer.sign(URL, FIELDS, secret)
    unsigned = WebhookRequest(genuine.url, genuine.path, genuine.query, {"content-type": FORM}, genuine.body)
    forged = signer.sign(URL, FIELDS, "not-our-secret")
    altered = WebhookRequest(
        genuine.url,
        genuine.path,
        genuine.query,
        genuine.headers,
        urlencode(FIELDS | {"MessageStatus": "failed"}).encode(),
    )
    retargeted = WebhookRequest(
        URL.replace("d=7", "d=8"), genuine.path, {"d": "8"}, genuine.headers, genuine.body
    )
    for request in (unsigned, forged, altered, retargeted):
        refusal = hooks.verify(request)
        assert isinstance(refusal, Refusal) and refusal.status == 403, request


def test_a_body_that_is_not_a_form_is_a_bad_request(kind: str) -> None:
    signer = SIGNERS[kind]
    genuine = signer.sign(URL, FIELDS, next(iter(signer.secrets.values())))
    hooks = _hooks(kind, signer.tables)
    as_json = WebhookRequest(
        genuine.url,
        genuine.path,
        genuine.query,
        dict(genuine.headers) | {"content-type": "application/json"},
        b"{}",
    )
    not_utf8 = WebhookRequest(genuine.url, genuine.path, genuine.query, genuine.headers, b"Body=%FF%FE")
    for request in (as_json, not_utf8):
        refusal = hooks.verify(request)
        assert isinstance(refusal, Refusal) and refusal.status == 400, refusal


def test_without_credentials_the_webhooks_say_they_are_disabled(kind: str) -> None:
    hooks = _hooks(kind, {kind: {}})
    assert "disabled" in hooks.why_disabled
    problem = _hooks(kind, {kind: {"no_such_key": 1}})
    assert "no_such_key" in problem.why_disabled  # a table that cannot be read says why
