"""Twilio's maps, table-driven: every MessageStatus and error code, and how a status callback's
fields become a provider-neutral DeliveryEvent (or a 400 naming what is wrong)."""

from __future__ import annotations

import pytest

from notifier.channels.twilio.codes import CARRIER_REASONS, REASONS, TWILIO_STATUS, refusal_reason, retryable
from notifier.channels.twilio.webhooks import public_base, status_event
from notifier.errors import InputError
from notifier.status import DeliveryStatus as S

SID = "SM" + "0" * 32


@pytest.mark.parametrize(
    "word, status",
    [
        ("accepted", S.SENT),
        ("scheduled", S.SENT),
        ("queued", S.SENT),
        ("sending", S.SENT),
        ("sent", S.SENT),
        ("delivered", S.DELIVERED),
        ("read", S.DELIVERED),
        ("undelivered", S.UNDELIVERED),
        ("failed", S.FAILED),
    ],
)
def test_each_twilio_status_has_one_meaning(word: str, status: S) -> None:
    assert TWILIO_STATUS[word] is status
    event = status_event({"MessageSid": SID, "MessageStatus": word.upper()}, {"d": "7"}, "tw")
    assert (event.provider, event.message_id, event.delivery_id) == ("tw", SID, 7)
    assert (event.status, event.provider_status, event.error_code, event.reason) == (status, word, None, None)


def test_the_table_is_the_whole_vocabulary() -> None:
    assert len(TWILIO_STATUS) == 9


@pytest.mark.parametrize(
    "http_status, code, again, reason",
    [
        (400, 21211, False, "号码无效"),
        (400, 21614, False, "不是手机号码"),
        (400, 21610, False, "已退订"),
        (400, 21408, False, "region"),
        (400, 21612, False, "无法从该发送号码送达"),
        (401, 20003, False, "认证失败"),
        (429, 20429, True, "请求过多"),
        (429, 429, True, "Twilio 拒绝 / Twilio refused (HTTP 429)"),
        (500, 500, True, "Twilio 暂时不可用 / Twilio unavailable (HTTP 500)"),
        (503, 503, True, "HTTP 503"),
        (400, 21617, False, "Twilio 拒绝 / Twilio refused (HTTP 400)"),
    ],
)
def test_api_refusals(http_status: int, code: int, again: bool, reason: str) -> None:
    assert retryable(http_status, code) is again
    assert reason in refusal_reason(http_status, code)


def test_every_api_reason_is_bilingual() -> None:
    assert all("/ " in r for r in [*REASONS.values(), *CARRIER_REASONS.values()])


@pytest.mark.parametrize("code", sorted(CARRIER_REASONS))
def test_carrier_codes_give_their_reason(code: str) -> None:
    form = {"SmsSid": SID, "SmsStatus": "undelivered", "ErrorCode": code}
    event = status_event(form, {})
    assert (event.status, event.error_code, event.reason) == (S.UNDELIVERED, code, CARRIER_REASONS[code])
    assert (event.message_id, event.delivery_id, event.raw) == (SID, None, form)


def test_an_unknown_carrier_code_keeps_the_code_without_a_reason() -> None:
    event = status_event({"MessageSid": SID, "MessageStatus": "failed", "ErrorCode": " 39999 "}, {"d": ""})
    assert (event.error_code, event.reason, event.delivery_id) == ("39999", None, None)


@pytest.mark.parametrize(
    "form, query, problem",
    [
        ({"MessageSid": SID}, {}, "without MessageStatus"),
        ({"MessageSid": SID, "MessageStatus": "teleported"}, {}, "unknown MessageStatus 'teleported'"),
        ({"MessageSid": SID, "MessageStatus": "sent"}, {"d": "12a"}, "delivery id"),
        ({"MessageSid": SID, "MessageStatus": "sent"}, {"d": "١٢"}, "delivery id"),  # Arabic-Indic digits
        ({"MessageStatus": "sent"}, {}, "without MessageSid and without the d="),
    ],
)
def test_malformed_callbacks_say_what_is_wrong(
    form: dict[str, str], query: dict[str, str], problem: str
) -> None:
    with pytest.raises(InputError, match=problem):
        status_event(form, query)


@pytest.mark.parametrize(
    "callback, base",
    [
        ("https://notice.example.gov.cn/twilio/status", "https://notice.example.gov.cn"),
        ("https://gw.example.gov.cn/notifier/twilio/status?site=x", "https://gw.example.gov.cn/notifier"),
        ("http://127.0.0.1:8080/receipts", "http://127.0.0.1:8080"),
    ],
)
def test_public_base_from_the_callback_url(callback: str, base: str) -> None:
    assert public_base(callback) == base
