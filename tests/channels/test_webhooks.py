"""The webhook security contract, for every kind in the registry that has webhooks: nothing is
believed before the provider's signature is. Each kind supplies how a genuine request is signed;
the suite checks that unsigned, forged, altered and re-targeted requests are refused, that a
genuine one is attributed to the account that signed it, and that without credentials the
webhooks say they are disabled. Kinds whose pushes carry no signature (Tencent) are believed on a
secret path token instead: they supply how a genuine push is addressed, and the suite checks that
a missing, wrong or nearly right token and a source outside the configured networks are refused.
The full flow over HTTP is in tests/web/test_serve.py (and per kind, tests/channels/test_<kind>*)."""

from __future__ import annotations

import json
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


def _unsigned(request: WebhookRequest) -> WebhookRequest:
    return WebhookRequest(request.url, request.path, request.query, {"content-type": FORM}, request.body)


def _unreadable_forms(genuine: WebhookRequest) -> list[WebhookRequest]:
    as_json = WebhookRequest(
        genuine.url,
        genuine.path,
        genuine.query,
        dict(genuine.headers) | {"content-type": "application/json"},
        b"{}",
    )
    not_utf8 = WebhookRequest(genuine.url, genuine.path, genuine.query, genuine.headers, b"Body=%FF%FE")
    return [as_json, not_utf8]


@dataclass(frozen=True)
class Signer:
    """How one kind's provider signs: its tables (two accounts) and a signed request builder.
    A kind whose provider signs nothing (Aliyun, Tencent: a secret path token) sets
    `body_signed = False`: an altered body or query cannot be told from a genuine one, so only
    requests without the credential or with a wrong one must be refused."""

    tables: Mapping[str, Mapping[str, Any]]
    sign: Callable[[str, dict[str, str], str], WebhookRequest]  # (url, fields, secret) -> request
    secrets: Mapping[str, str]  # account name -> its secret
    body_signed: bool = True
    strip: Callable[[WebhookRequest], WebhookRequest] = _unsigned  # the request without its credential
    unreadable: Callable[[WebhookRequest], list[WebhookRequest]] = _unreadable_forms  # credential, bad body


def _twilio_request(url: str, fields: dict[str, str], token: str) -> WebhookRequest:
    signature = RequestValidator(token).compute_signature(url, fields)
    headers = {"content-type": FORM + "; charset=utf-8", "x-twilio-signature": signature}
    return WebhookRequest(url, "/twilio/status", {"d": "7"}, headers, urlencode(fields).encode())


def _aliyun_request(url: str, fields: dict[str, str], token: str) -> WebhookRequest:
    """An SmsReport push: a JSON array to /aliyun/status/<token>; `fields` become the item."""
    path = f"/aliyun/status/{token}"
    item = {"phone_number": "13800000001", "success": True, "out_id": "7"} | fields
    headers = {"content-type": "application/json"}
    return WebhookRequest(
        f"https://notice.example.gov.cn{path}", path, {}, headers, json.dumps([item]).encode()
    )


def _aliyun_strip(request: WebhookRequest) -> WebhookRequest:
    path = request.path.rpartition("/")[0]
    return WebhookRequest(request.url, path, request.query, request.headers, request.body)


def _aliyun_unreadable(genuine: WebhookRequest) -> list[WebhookRequest]:
    form = dict(genuine.headers) | {"content-type": FORM}
    return [
        WebhookRequest(genuine.url, genuine.path, genuine.query, form, b"a=1"),
        WebhookRequest(genuine.url, genuine.path, genuine.query, genuine.headers, b"\xff\xfe"),
        WebhookRequest(genuine.url, genuine.path, genuine.query, genuine.headers, b'{"not": "an array"}'),
    ]


SIGNERS = {
    "twilio": Signer(
        {"twilio": {"auth_token": "token-one"}, "backup": {"kind": "twilio", "auth_token": "token-two"}},
        _twilio_request,
        {"twilio": "token-one", "backup": "token-two"},
    ),
    "aliyun": Signer(
        {
            "aliyun": {"receipt_token": "push-token-one"},
            "county2": {"kind": "aliyun", "receipt_token": "push-token-two"},
        },
        _aliyun_request,
        {"aliyun": "push-token-one", "county2": "push-token-two"},
        body_signed=False,
        strip=_aliyun_strip,
        unreadable=_aliyun_unreadable,
    ),
}


@dataclass(frozen=True)
class Token:
    """How one kind's unsigned pushes are believed: its tables (two accounts; `backup` only from
    10.1.0.0/16), a genuine status push to a token from an address, and each account's token."""

    tables: Mapping[str, Mapping[str, Any]]
    push: Callable[[str, str, str], WebhookRequest]  # (path prefix, token, client address) -> request
    tokens: Mapping[str, str]  # account name -> its token
    prefix: str  # the status path before the token


REPORT = [{"report_status": "SUCCESS", "errmsg": "DELIVRD", "sid": "2433:1", "mobile": "13800000001"}]


def _json_push(prefix: str, token: str, client: str) -> WebhookRequest:
    path = f"{prefix}/{token}"
    headers = {"content-type": "application/json"}
    body = json.dumps(REPORT).encode()
    return WebhookRequest(f"https://notice.example.gov.cn{path}", path, {}, headers, body, client)


TOKENS = {
    "tencent": Token(
        {
            "tencent": {"callback_token": "t0ken-one-0123456789"},
            "backup": {
                "kind": "tencent",
                "callback_token": "t0ken-two-0123456789",
                "source_networks": ["10.1.0.0/16"],
            },
        },
        _json_push,
        {"tencent": "t0ken-one-0123456789", "backup": "t0ken-two-0123456789"},
        "/tencent/status",
    ),
}
WITH_WEBHOOKS = sorted(k for k, entry in KINDS.items() if entry.webhooks is not None)


def test_every_kind_with_webhooks_has_a_signer() -> None:
    assert WITH_WEBHOOKS == sorted(SIGNERS.keys() | TOKENS.keys())


def _hooks(kind: str, tables: Mapping[str, Mapping[str, Any]]) -> Webhooks:
    cls = KINDS[kind].webhooks
    assert cls is not None
    return cls(tables)


@pytest.fixture(params=sorted(SIGNERS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=sorted(TOKENS))
def token_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_routes_live_under_the_kind(kind: str) -> None:
    routes = _hooks(kind, SIGNERS[kind].tables).routes()
    status = [p for p, h in routes.items() if h is Hook.STATUS]
    assert (
        status and status[0].startswith(f"/{kind}/status") and all(p.startswith(f"/{kind}/") for p in routes)
    )


def test_a_genuine_request_is_attributed_to_the_account_that_signed_it(kind: str) -> None:
    signer = SIGNERS[kind]
    hooks = _hooks(kind, signer.tables)
    assert hooks.why_disabled == ""
    for account, secret in signer.secrets.items():
        verified = hooks.verify(signer.sign(URL, FIELDS, secret))
        assert isinstance(verified, Verified) and verified.provider == account
        if signer.body_signed:
            assert verified == Verified(account, FIELDS)
        [event] = hooks.parse_status(verified, signer.sign(URL, FIELDS, secret))
        assert event.provider == account and FIELDS.items() <= event.raw.items()


def test_unsigned_forged_altered_and_retargeted_requests_are_refused(kind: str) -> None:
    signer = SIGNERS[kind]
    hooks = _hooks(kind, signer.tables)
    secret = next(iter(signer.secrets.values()))
    genuine = signer.sign(URL, FIELDS, secret)
    unsigned = signer.strip(genuine)
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
    for request in (unsigned, forged) + ((altered, retargeted) if signer.body_signed else ()):
        refusal = hooks.verify(request)
        assert isinstance(refusal, Refusal) and refusal.status == 403, request


def test_a_body_the_kind_cannot_read_is_a_bad_request(kind: str) -> None:
    signer = SIGNERS[kind]
    genuine = signer.sign(URL, FIELDS, next(iter(signer.secrets.values())))
    hooks = _hooks(kind, signer.tables)
    for request in signer.unreadable(genuine):
        refusal = hooks.verify(request)
        assert isinstance(refusal, Refusal) and refusal.status == 400, refusal


def test_without_credentials_the_webhooks_say_they_are_disabled(kind: str) -> None:
    hooks = _hooks(kind, {kind: {}})
    assert "disabled" in hooks.why_disabled
    problem = _hooks(kind, {kind: {"no_such_key": 1}})
    assert "no_such_key" in problem.why_disabled  # a table that cannot be read says why


def test_token_routes_live_under_the_kind(token_kind: str) -> None:
    routes = _hooks(token_kind, TOKENS[token_kind].tables).routes()
    assert routes[f"/{token_kind}/status"] is Hook.STATUS
    assert all(p.startswith(f"/{token_kind}/") for p in routes)


def test_a_push_on_an_accounts_token_is_attributed_to_that_account(token_kind: str) -> None:
    t = TOKENS[token_kind]
    hooks = _hooks(token_kind, t.tables)
    assert hooks.why_disabled == ""
    for account, token in t.tokens.items():
        request = t.push(t.prefix, token, "10.1.2.3")
        verified = hooks.verify(request)
        assert isinstance(verified, Verified) and verified.provider == account
        events = hooks.parse_status(verified, request)
        assert events and all(e.provider == account for e in events)


def test_missing_wrong_and_nearly_right_tokens_are_refused(token_kind: str) -> None:
    t = TOKENS[token_kind]
    hooks = _hooks(token_kind, t.tables)
    token = next(iter(t.tokens.values()))
    other_kind = "/other" + t.prefix[t.prefix.index("/", 1) :]
    for prefix, given in [
        (t.prefix, ""),
        (t.prefix, "not-our-token"),
        (t.prefix, token[:-1]),
        (t.prefix, token + "x"),
        (t.prefix, token.upper()),
        (other_kind, token),
    ]:
        refusal = hooks.verify(t.push(prefix, given, "10.1.2.3"))
        assert isinstance(refusal, Refusal) and refusal.status == 403, (prefix, given)
    bare = t.push(t.prefix, token, "10.1.2.3")
    no_token = WebhookRequest(bare.url, t.prefix, {}, bare.headers, bare.body, bare.client)
    assert isinstance(hooks.verify(no_token), Refusal)


def test_a_source_outside_the_accounts_networks_is_refused(token_kind: str) -> None:
    t = TOKENS[token_kind]
    hooks = _hooks(token_kind, t.tables)
    limited = t.tokens["backup"]
    assert isinstance(hooks.verify(t.push(t.prefix, limited, "10.1.200.7")), Verified)
    for client in ("127.0.0.1", "10.2.0.1", "", "not-an-address"):
        refusal = hooks.verify(t.push(t.prefix, limited, client))
        assert isinstance(refusal, Refusal) and refusal.status == 403, client
    assert isinstance(hooks.verify(t.push(t.prefix, t.tokens[token_kind], "192.0.2.1")), Verified)  # no limit


def test_a_token_push_that_is_not_json_is_a_bad_request(token_kind: str) -> None:
    t = TOKENS[token_kind]
    hooks = _hooks(token_kind, t.tables)
    genuine = t.push(t.prefix, next(iter(t.tokens.values())), "10.1.2.3")
    as_form = WebhookRequest(
        genuine.url, genuine.path, {}, {"content-type": FORM}, b"report_status=SUCCESS", genuine.client
    )
    not_json = WebhookRequest(genuine.url, genuine.path, {}, genuine.headers, b"[{", genuine.client)
    not_utf8 = WebhookRequest(genuine.url, genuine.path, {}, genuine.headers, b"\xff\xfe", genuine.client)
    for request in (as_form, not_json, not_utf8):
        refusal = hooks.verify(request)
        assert isinstance(refusal, Refusal) and refusal.status == 400, request.body


def test_without_a_token_the_webhooks_say_they_are_disabled(token_kind: str) -> None:
    hooks = _hooks(token_kind, {token_kind: {}})
    assert "disabled" in hooks.why_disabled
    problem = _hooks(token_kind, {token_kind: {"source_networks": ["10.0.0.0/33"], "callback_token": "x"}})
    assert "10.0.0.0/33" in problem.why_disabled  # a table that cannot be read says why
