"""The Aliyun provider against the local dysmsapi server over real HTTP, through the official SDK:
what it sends, how each answer is classified, batches, lookups, and that the loop never blocks."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from notifier.channels.aliyun import AliyunProvider
from notifier.channels.aliyun.codes import ACCOUNT, PERMANENT, TRANSIENT, Kind, kind_of, reason
from notifier.channels.base import OutboundMessage, SendResult
from notifier.channels.templated import TemplateCall
from notifier.errors import (
    AccountError,
    AmbiguousError,
    ConfigError,
    PermanentError,
    ProviderError,
    TransientError,
)
from notifier.status import Channel, DeliveryStatus

from ..support.aliyun_server import AliyunServer, Fault

TEXT = "${name}您好，您家的${item}${amount}元已发放。回TD退订"
SIGN = "某某县民政局"


def message(i: int, *, code: str = "SMS_4870001", phone: str | None = None, **params: str) -> OutboundMessage:
    values = {"name": f"居民{i}", "item": "低保金", "amount": "1,234.50"} | params
    body = TEXT.replace("${name}", values["name"]).replace("${item}", values["item"])
    return OutboundMessage(
        delivery_id=i,
        run_id=1,
        channel=Channel.SMS,
        resident_id=f"R{i}",
        recipient=phone or f"+861380000{i:04d}",
        recipient_name=values["name"],
        body=body.replace("${amount}", values["amount"]),
        templates={"aliyun": TemplateCall(code, SIGN, tuple(values.items()))},
    )


@pytest.fixture
async def server() -> AsyncIterator[AliyunServer]:
    async with AliyunServer() as s:
        s.register("SMS_4870001", TEXT)
        yield s


@pytest.fixture
async def provider(server: AliyunServer) -> AsyncIterator[AliyunProvider]:
    p = AliyunProvider("aliyun", server.table())
    await p.open()
    yield p
    await p.close()


async def _raised(coro: Any) -> ProviderError:
    try:
        await coro
    except ProviderError as exc:
        return exc
    raise AssertionError("did not raise")


# -- the codes map ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("isv.MOBILE_NUMBER_ILLEGAL", Kind.PERMANENT),
        ("isv.TEMPLATE_MISSING_PARAMETERS", Kind.PERMANENT),
        ("isv.PARAM_LENGTH_LIMIT", Kind.PERMANENT),
        ("isv.PARAM_NOT_SUPPORT_URL", Kind.PERMANENT),
        ("isv.BUSINESS_LIMIT_CONTROL", Kind.TRANSIENT),
        ("Throttling.User", Kind.TRANSIENT),
        ("Throttling.Whatever", Kind.TRANSIENT),
        ("isp.SYSTEM_ERROR", Kind.TRANSIENT),
        ("isv.AMOUNT_NOT_ENOUGH", Kind.ACCOUNT),
        ("isv.OUT_OF_SERVICE", Kind.ACCOUNT),
        ("isv.DAY_LIMIT_CONTROL", Kind.ACCOUNT),
        ("isv.SMS_SIGNATURE_ILLEGAL", Kind.ACCOUNT),
        ("isv.SMS_TEMPLATE_ILLEGAL", Kind.ACCOUNT),
        ("SignatureDoesNotMatch", Kind.ACCOUNT),
        ("isv.SOMETHING_NEW", Kind.PERMANENT),
    ],
)
def test_codes_are_classified(code: str, kind: Kind) -> None:
    assert kind_of(code) is kind
    assert "/ " in reason(code)


@pytest.mark.parametrize(
    ("status", "kind"), [(500, Kind.TRANSIENT), (503, Kind.TRANSIENT), (429, Kind.TRANSIENT)]
)
def test_unknown_codes_follow_the_http_status(status: int, kind: Kind) -> None:
    assert kind_of("Unheard.Of", status) is kind


def test_the_tables_do_not_overlap_and_every_reason_has_chinese() -> None:
    assert not (
        set(PERMANENT) & set(TRANSIENT) or set(PERMANENT) & set(ACCOUNT) or set(TRANSIENT) & set(ACCOUNT)
    )
    for text in [*PERMANENT.values(), *TRANSIENT.values(), *ACCOUNT.values()]:
        assert any("\u4e00" <= ch <= "\u9fff" for ch in text)


# -- sending ------------------------------------------------------------------------------
async def test_send_sends_the_registered_template_with_our_delivery_id(
    server: AliyunServer, provider: AliyunProvider
) -> None:
    result = await provider.send(message(7))
    assert result.status is DeliveryStatus.SENT and result.provider_message_id == "7:13800000007"
    [m] = server.messages
    assert (m.phone, m.sign, m.template, m.out_id) == ("13800000007", SIGN, "SMS_4870001", "7")
    assert m.params == {"name": "居民7", "item": "低保金", "amount": "1,234.50"}
    assert m.content == f"【{SIGN}】{message(7).body}"  # the handset shows what was approved
    assert result.raw["biz_id"] and server.calls == [("SendSms", 1, "OK")]


async def test_a_message_without_template_is_refused_for_good(
    server: AliyunServer, provider: AliyunProvider
) -> None:
    plain = OutboundMessage(1, 1, Channel.SMS, "R1", "+8613800000001", "居民1", "正文")
    err = await _raised(provider.send(plain))
    assert type(err) is PermanentError and err.code == "no_template"
    assert server.calls == []


@pytest.mark.parametrize(
    ("fault", "error", "code"),
    [
        (Fault.refuse("isv.MOBILE_NUMBER_ILLEGAL"), PermanentError, "isv.MOBILE_NUMBER_ILLEGAL"),
        (Fault.refuse("isv.BUSINESS_LIMIT_CONTROL"), TransientError, "isv.BUSINESS_LIMIT_CONTROL"),
        (Fault.refuse("isv.AMOUNT_NOT_ENOUGH"), AccountError, "isv.AMOUNT_NOT_ENOUGH"),
        (Fault.refuse("isv.DAY_LIMIT_CONTROL"), AccountError, "isv.DAY_LIMIT_CONTROL"),
        (Fault.throttled(), TransientError, "Throttling.User"),
        (Fault.server_error(500), TransientError, "InternalError"),
        (Fault.server_error(503), TransientError, "InternalError"),
    ],
)
async def test_answers_are_classified(
    server: AliyunServer, provider: AliyunProvider, fault: Fault, error: type[ProviderError], code: str
) -> None:
    server.fail_next(fault)
    err = await _raised(provider.send(message(1)))
    assert type(err) is error and err.code == code and err.provider == "aliyun"
    assert "13800000001" not in err.message  # the number is masked
    assert server.messages == []


async def test_a_template_the_server_does_not_know_the_variables_of_is_refused(
    server: AliyunServer, provider: AliyunProvider
) -> None:
    m = message(1)
    call = m.templates["aliyun"]
    bad = OutboundMessage(
        **{**m.__dict__, "templates": {"aliyun": TemplateCall(call.code, call.sign, call.params[:1])}}
    )
    err = await _raised(provider.send(bad))
    assert type(err) is PermanentError and err.code == "isv.TEMPLATE_MISSING_PARAMETERS"


async def test_a_wrong_secret_is_an_account_error_and_the_signature_is_really_checked(
    server: AliyunServer,
) -> None:
    p = AliyunProvider("aliyun", server.table(access_key_secret="not-the-secret"))
    err = await _raised(p.send(message(1)))
    assert type(err) is AccountError and err.code == "SignatureDoesNotMatch"
    p = AliyunProvider("aliyun", server.table(access_key_id="LTAInobody"))
    err = await _raised(p.send(message(1)))
    assert type(err) is AccountError and err.code == "InvalidAccessKeyId.NotFound"
    assert server.messages == []


async def test_a_slow_answer_is_ambiguous_and_does_not_block_the_loop(server: AliyunServer) -> None:
    p = AliyunProvider("aliyun", server.table(timeout=0.5))
    server.fail_next(Fault.slow(2.0))
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    err = await _raised(p.send(message(1)))
    ticker.cancel()
    assert type(err) is AmbiguousError and err.code == "timeout"
    assert time.monotonic() - started < 1.5 and ticks >= 10  # the loop ran while the SDK waited
    assert len(server.messages) == 1  # Aliyun had it: only a lookup can tell


async def test_nobody_listening_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = AliyunProvider(
        "aliyun",
        {"access_key_id": "a", "access_key_secret": "b", "endpoint": f"127.0.0.1:{port}"}
        | {"protocol": "http"},
    )
    err = await _raised(p.send(message(1)))
    assert type(err) is TransientError and err.code == "connect"


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="access_key_id and access_key_secret"):
        AliyunProvider("aliyun", {"access_key_id": "x"})
    with pytest.raises(ConfigError, match="protocol"):
        AliyunProvider("aliyun", {"access_key_id": "x", "access_key_secret": "y", "protocol": "ftp"})


def test_the_access_key_may_come_from_the_sdk_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIenv")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "secret-from-env")
    p = AliyunProvider("aliyun", {})
    assert p.options.access_key_secret == "secret-from-env" and "secret" not in p.describe()


# -- batches ------------------------------------------------------------------------------
async def test_a_batch_is_one_request_and_each_number_has_its_own_id(
    server: AliyunServer, provider: AliyunProvider
) -> None:
    batch = [message(i) for i in range(1, 151)]
    results = await provider.send_batch(batch)
    assert [c[:2] for c in server.calls] == [("SendBatchSms", 100), ("SendBatchSms", 50)]
    ids = [r.provider_message_id for r in results if not isinstance(r, ProviderError)]
    assert len(set(ids)) == 150 and ids[0] == "b1:13800000001" and ids[100] == "b101:13800000101"
    assert {m.phone: m.params["name"] for m in server.messages}["13800000042"] == "居民42"
    assert all(m.content == f"【{SIGN}】{message(i + 1).body}" for i, m in enumerate(server.messages))


async def test_a_batch_refused_for_one_number_settles_each_number_on_its_own(
    server: AliyunServer, provider: AliyunProvider
) -> None:
    server.number_faults["13800000002"] = Fault.refuse("isv.MOBILE_NUMBER_ILLEGAL")
    other = message(9, code="SMS_OTHER")
    results = await provider.send_batch([message(1), message(2), other, message(3)])
    assert [type(r) for r in results] == [SendResult, PermanentError, SendResult, SendResult]
    assert sorted(m.phone for m in server.messages) == ["13800000001", "13800000003", "13800000009"]
    # the batch (refused, nothing sent), then one SendSms per member; another template: its own call
    assert sorted(c[:2] for c in server.calls) == [("SendBatchSms", 3)] + [("SendSms", 1)] * 4


async def test_a_batch_refused_for_now_is_refused_for_every_member(
    server: AliyunServer, provider: AliyunProvider
) -> None:
    server.fail_next(Fault.refuse("isv.BUSINESS_LIMIT_CONTROL"))
    results = await provider.send_batch([message(1), message(2), message(9, code="SMS_OTHER")])
    assert [type(r) for r in results] == [TransientError, TransientError, SendResult]


async def test_a_number_twice_goes_in_another_call(server: AliyunServer, provider: AliyunProvider) -> None:
    same = "+8613800000001"
    results = await provider.send_batch([message(1, phone=same), message(2, phone=same), message(3)])
    assert all(not isinstance(r, ProviderError) for r in results)
    assert len({r.provider_message_id for r in results if not isinstance(r, ProviderError)}) == 3
    assert sorted(c[:2] for c in server.calls) == [("SendBatchSms", 2), ("SendSms", 1)]


async def test_a_whole_batch_that_fails_raises(server: AliyunServer, provider: AliyunProvider) -> None:
    server.fail_next(Fault.refuse("isv.AMOUNT_NOT_ENOUGH"))
    err = await _raised(provider.send_batch([message(1), message(2)]))
    assert type(err) is AccountError


async def test_batch_parameters_are_json_arrays(server: AliyunServer, provider: AliyunProvider) -> None:
    await provider.send_batch([message(1), message(2, name="李四")])
    names = [m.params["name"] for m in server.messages]
    assert names == ["居民1", "李四"] and json.dumps(names, ensure_ascii=False)


# -- lookup -------------------------------------------------------------------------------
async def test_lookup_finds_a_message_whose_answer_was_lost(server: AliyunServer) -> None:
    p = AliyunProvider("aliyun", server.table(timeout=0.5))
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    server.fail_next(Fault.slow(2.0))
    assert type(await _raised(p.send(message(5)))) is AmbiguousError
    found = await p.lookup(message(5), since)
    assert found is not None and found.provider_message_id == "5:13800000005" and found.raw["reconciled"]
    assert await p.lookup(message(6), since) is None


async def test_lookup_finds_a_batch_member_by_its_text(
    server: AliyunServer, provider: AliyunProvider
) -> None:
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    sent = await provider.send_batch([message(1), message(2)])
    found = await provider.lookup(message(2), since)
    assert found is not None and not isinstance(sent[1], ProviderError)
    assert found.provider_message_id == sent[1].provider_message_id
    assert await provider.lookup(message(2, name="别人"), since) is None


async def test_a_failed_lookup_is_transient(server: AliyunServer, provider: AliyunProvider) -> None:
    server.failing_reads = 1
    err = await _raised(provider.lookup(message(1), datetime.now(timezone.utc)))
    assert type(err) is TransientError and err.code == "lookup"


async def test_an_unapproved_signature_is_an_account_error(
    server: AliyunServer, provider: AliyunProvider
) -> None:
    server.signs = {"另一个县民政局"}  # the only signature this account may use
    err = await _raised(provider.send(message(1)))
    assert type(err) is AccountError and err.code == "isv.SMS_SIGNATURE_ILLEGAL" and "签名" in err.message
    assert server.messages == []


async def test_batching_can_be_turned_off(server: AliyunServer) -> None:
    p = AliyunProvider("aliyun", server.table(batch=False))
    results = await p.send_batch([message(1), message(2)])
    assert all(isinstance(r, SendResult) for r in results)
    assert [c[:2] for c in server.calls] == [("SendSms", 1), ("SendSms", 1)]
