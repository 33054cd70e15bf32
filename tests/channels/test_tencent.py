"""TencentProvider against the Tencent-compatible server on 127.0.0.1, through the official SDK
over real HTTP (every request's TC3-HMAC-SHA256 signature checked by the server): the SendSms it
builds, batches of up to 200 numbers settled number by number, what a lost or refused request
raises, that the SDK's blocking calls leave the event loop free, and lookup finding a message
whose answer timed out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from notifier.channels.base import OutboundMessage
from notifier.channels.templated import TemplateCall
from notifier.channels.tencent import TencentProvider
from notifier.channels.tencent.send import delivery_ids, session_context
from notifier.errors import (
    AccountError,
    AmbiguousError,
    ConfigError,
    PermanentError,
    ProviderError,
    TransientError,
)
from notifier.status import Channel, DeliveryStatus
from tests.support.project import free_port
from tests.support.tencent_server import (
    SDK_APP_ID,
    SECRET_ID,
    SECRET_KEY,
    SIGN,
    TEMPLATE_ID,
    Fault,
    TencentServer,
)

PARAMS = (("name", "张三"), ("amount", "1,200.00"))


def settings(server: TencentServer, **over: Any) -> dict[str, Any]:
    table = {
        "secret_id": SECRET_ID,
        "secret_key": SECRET_KEY,
        "sdk_app_id": SDK_APP_ID,
        "region": "ap-beijing",
    }
    return table | {"endpoint": server.endpoint, "protocol": "http", "timeout": 5} | over


def message(
    i: int = 1, *, to: str | None = None, params: tuple[tuple[str, str], ...] = PARAMS
) -> OutboundMessage:
    return OutboundMessage(
        delivery_id=i,
        run_id=1,
        channel=Channel.SMS,
        resident_id=f"R{i}",
        recipient=to or f"+8613{i:09d}",
        recipient_name="张三",
        body="张三您好，您家的补贴1,200.00元已发放。回TD退订",
        templates={"tencent": TemplateCall(TEMPLATE_ID, SIGN, params)},
    )


@pytest.fixture
async def server() -> AsyncIterator[TencentServer]:
    async with TencentServer() as s:
        yield s


@pytest.fixture
async def provider(server: TencentServer) -> AsyncIterator[TencentProvider]:
    p = TencentProvider("tencent", settings(server))
    await p.open()
    yield p
    await p.close()


async def _raised(provider: TencentProvider, m: OutboundMessage) -> ProviderError:
    try:
        await provider.send(m)
    except ProviderError as exc:
        return exc
    raise AssertionError("send did not raise")


# -- the request --------------------------------------------------------------------------
async def test_send_fills_the_registered_template_and_returns_the_serial_no(
    provider: TencentProvider, server: TencentServer
) -> None:
    result = await provider.send(message(7))
    assert result.status is DeliveryStatus.SENT
    [call] = server.calls
    assert call.params == {
        "PhoneNumberSet": ["+8613000000007"],
        "SmsSdkAppId": SDK_APP_ID,
        "TemplateId": TEMPLATE_ID,
        "SignName": SIGN,
        "TemplateParamSet": ["张三", "1,200.00"],  # in the registered template's order, as strings
        "SessionContext": "d:7",
    }
    [accepted] = server.messages
    assert result.provider_message_id == accepted.serial_no and result.raw["fee"] == 1


async def test_a_message_without_a_tencent_template_is_refused_before_any_request(
    provider: TencentProvider, server: TencentServer
) -> None:
    bare = OutboundMessage(1, 1, Channel.SMS, "R1", "+8613000000001", "张三", "text")
    err = await _raised(provider, bare)
    assert (
        type(err) is PermanentError and err.code == "no_template" and "sms_templates.tencent" in err.message
    )
    assert server.calls == []


@pytest.mark.parametrize(
    "over, code",
    [
        ({"secret_key": "not-the-key"}, "AuthFailure.SignatureFailure"),
        ({"secret_id": "AKIDunknown"}, "AuthFailure.SecretIdNotFound"),
        ({"sdk_app_id": "1400999999"}, "InvalidParameterValue.SdkAppIdNotExist"),
    ],
)
async def test_bad_credentials_are_the_accounts_problem(
    server: TencentServer, over: dict[str, str], code: str
) -> None:
    p = TencentProvider("tencent", settings(server, **over))
    try:
        err = await _raised(p, message())
    finally:
        await p.close()
    assert type(err) is AccountError and err.code == code
    assert server.messages == []


async def test_an_unapproved_signature_or_template_is_the_accounts_problem(
    provider: TencentProvider, server: TencentServer
) -> None:
    unsigned = message()
    unsigned = OutboundMessage(
        **{**unsigned.__dict__, "templates": {"tencent": TemplateCall(TEMPLATE_ID, "别的签名", PARAMS)}}
    )
    assert (await _raised(provider, unsigned)).code == "FailedOperation.SignatureIncorrectOrUnapproved"
    other = OutboundMessage(
        **{**unsigned.__dict__, "templates": {"tencent": TemplateCall("999", SIGN, PARAMS)}}
    )
    err = await _raised(provider, other)
    assert type(err) is AccountError and err.code == "FailedOperation.TemplateIncorrectOrUnapproved"
    wrong = await _raised(provider, message(params=PARAMS[:1]))
    assert (
        type(wrong) is PermanentError
        and wrong.code == "FailedOperation.TemplateParamSetNotMatchApprovedTemplate"
    )


# -- batches ------------------------------------------------------------------------------
async def test_two_hundred_numbers_go_in_one_request_and_settle_one_by_one(
    provider: TencentProvider, server: TencentServer
) -> None:
    batch = [message(i) for i in range(1, 201)]
    server.fail_number(batch[9].recipient, "FailedOperation.PhoneNumberInBlacklist")
    server.fail_number(batch[19].recipient, "LimitExceeded.PhoneNumberDailyLimit")
    results = await provider.send_batch(batch)
    [call] = server.calls
    assert len(call.numbers) == 200 and call.params["SessionContext"] == "d:1-200"
    assert len(results) == 200
    opted_out, limited = results[9], results[19]
    assert type(opted_out) is PermanentError and "退订" in opted_out.message
    assert type(limited) is TransientError and limited.code == "LimitExceeded.PhoneNumberDailyLimit"
    sent = [r for i, r in enumerate(results) if i not in (9, 19)]
    assert all(not isinstance(r, ProviderError) and r.status is DeliveryStatus.SENT for r in sent)
    serials = {m.phone: m.serial_no for m in server.messages}
    for m, r in zip(batch, results, strict=True):
        if not isinstance(r, ProviderError):
            assert r.provider_message_id == serials[m.recipient]  # each number its own SerialNo
    assert len(serials) == 198


async def test_only_messages_with_the_same_values_share_a_request(
    provider: TencentProvider, server: TencentServer
) -> None:
    other = (("name", "李四"), ("amount", "80.00"))
    batch = [message(1), message(2, params=other), message(3), message(4, to=message(1).recipient)]
    results = await provider.send_batch(batch)
    assert all(not isinstance(r, ProviderError) for r in results)
    assert [(c.numbers, c.params["TemplateParamSet"], c.params["SessionContext"]) for c in server.calls] == [
        ([batch[0].recipient, batch[2].recipient], ["张三", "1,200.00"], "d:1,3"),
        ([batch[1].recipient], ["李四", "80.00"], "d:2"),
        ([batch[0].recipient], ["张三", "1,200.00"], "d:4"),  # a number once per request
    ]


async def test_a_failed_request_is_raised_alone_and_returned_among_others(
    provider: TencentProvider, server: TencentServer
) -> None:
    server.fail_next(Fault.error("FailedOperation.InsufficientBalanceInSmsPackage"))
    with pytest.raises(AccountError):
        await provider.send_batch([message(1), message(2)])
    other = (("name", "李四"), ("amount", "80.00"))
    server.fail_next(Fault.error("InternalError.OtherError"))  # the first request of the next batch
    first, second, third = await provider.send_batch([message(3), message(4, params=other), message(5)])
    assert type(first) is TransientError and type(third) is TransientError and first is third
    assert not isinstance(second, ProviderError) and second.status is DeliveryStatus.SENT


async def test_after_an_account_error_the_rest_of_the_batch_is_not_tried(
    provider: TencentProvider, server: TencentServer
) -> None:
    other = (("name", "李四"), ("amount", "80.00"))
    server.fail_next(Fault.error("FailedOperation.InsufficientBalanceInSmsPackage"))
    results = await provider.send_batch([message(1), message(2, params=other), message(3, to="13000000003")])
    assert all(type(r) is AccountError for r in results) and len(server.calls) == 1


async def test_numbers_go_as_e164_and_their_answers_find_them(
    provider: TencentProvider, server: TencentServer
) -> None:
    results = await provider.send_batch([message(1, to="13000000001"), message(2, to="008613000000002")])
    assert server.calls[0].numbers == ["+8613000000001", "+8613000000002"]
    assert all(not isinstance(r, ProviderError) and r.status is DeliveryStatus.SENT for r in results)


async def test_a_batch_over_the_limit_is_a_caller_bug(provider: TencentProvider) -> None:
    assert provider.max_batch == 200
    with pytest.raises(ValueError, match="at most 200"):
        await provider.send_batch([message(i) for i in range(201)])


async def test_a_session_context_that_would_not_fit_splits_the_request(
    provider: TencentProvider, server: TencentServer
) -> None:
    batch = [message(i) for i in range(1, 400, 2)]  # 200 ids, none consecutive: too long for one
    results = await provider.send_batch(batch)
    assert all(not isinstance(r, ProviderError) for r in results)
    contexts = [c.params["SessionContext"] for c in server.calls]
    assert len(contexts) == 2 and all(len(c.encode()) < 512 for c in contexts)
    assert set().union(*map(delivery_ids, contexts)) == {m.delivery_id for m in batch}


async def test_the_sdks_debug_log_shows_no_number(
    provider: TencentProvider, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("DEBUG"):
        await provider.send(message(3))
    assert all("13000000003" not in r.getMessage() for r in caplog.records)


def test_session_context_names_every_delivery_compactly() -> None:
    ids = [*range(1001, 1201), 1305, 7]
    context = session_context(ids)
    assert context == "d:7,1001-1200,1305" and delivery_ids(context) == set(ids)
    assert (
        delivery_ids("d:") == set() and delivery_ids("other text") == set() and delivery_ids("d:3-x") == set()
    )


# -- a lost or refused request ------------------------------------------------------------
async def test_no_answer_within_the_timeout_is_ambiguous_and_not_retried(server: TencentServer) -> None:
    server.fail_next(Fault.slow(3))
    p = TencentProvider("tencent", settings(server, timeout=0.3))
    try:
        started = time.monotonic()
        err = await _raised(p, message())
        assert time.monotonic() - started < 2
    finally:
        await p.close()
    assert type(err) is AmbiguousError and err.code == "timeout"
    assert len(server.calls) == 1 and len(server.messages) == 1  # taken once: the SDK retried nothing


async def test_http_errors_and_refused_connections_are_transient(server: TencentServer) -> None:
    p = TencentProvider("tencent", settings(server))
    try:
        server.fail_next(Fault.server_error(502))
        err = await _raised(p, message())
        assert type(err) is TransientError and err.code == "http" and len(server.calls) == 1
        assert (await p.send(message())).status is DeliveryStatus.SENT  # and then it passes
    finally:
        await p.close()
    dead = TencentProvider("tencent", settings(server, endpoint=f"127.0.0.1:{free_port()}"))
    try:
        err = await _raised(dead, message())
    finally:
        await dead.close()
    assert type(err) is TransientError and err.code == "connect"


async def test_a_slow_answer_leaves_the_event_loop_free(server: TencentServer) -> None:
    server.fail_next(Fault(delay=1.0))  # answers, late but within the timeout
    p = TencentProvider("tencent", settings(server, timeout=5))
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        result = await p.send(message())
    finally:
        ticker.cancel()
        await p.close()
    assert result.status is DeliveryStatus.SENT
    assert ticks >= 10  # ~20 ticks in 1 s: the loop kept running while the SDK waited


async def test_sends_in_flight_at_once_run_side_by_side(server: TencentServer) -> None:
    server.fail_next(*[Fault(delay=0.5)] * 4)
    p = TencentProvider("tencent", settings(server, concurrency=4))
    try:
        started = time.monotonic()
        results = await asyncio.gather(*(p.send(message(i)) for i in range(1, 5)))
        elapsed = time.monotonic() - started
    finally:
        await p.close()
    assert all(r.status is DeliveryStatus.SENT for r in results)
    assert elapsed < 1.5  # four half-second answers together, not one after another


# -- lookup -------------------------------------------------------------------------------
async def test_a_send_whose_answer_timed_out_is_found_by_lookup(server: TencentServer) -> None:
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    server.fail_next(Fault.slow(3))
    p = TencentProvider("tencent", settings(server, timeout=0.3))
    try:
        assert type(await _raised(p, message(42))) is AmbiguousError
        await p.send(message(43, to=message(42).recipient))  # another notice to the same number
        found = await p.lookup(message(42), since)
        assert await p.lookup(message(44), since) is None  # never sent
    finally:
        await p.close()
    assert found is not None and found.status is DeliveryStatus.SENT and found.raw["reconciled"]
    taken = next(m for m in server.messages if m.session_context == "d:42")
    assert found.provider_message_id == taken.serial_no
    pull = server.calls[-2].params
    assert pull["PhoneNumber"] == message(42).recipient and pull["BeginTime"] == int(since.timestamp())


async def test_lookup_sees_past_a_full_page(provider: TencentProvider, server: TencentServer) -> None:
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    to = message(1).recipient
    for i in range(1, 106):
        await provider.send(message(i, to=to))
    for age, m in enumerate(reversed(server.messages)):  # sent over the last 105 seconds
        m.created -= timedelta(seconds=age)
    since = datetime.now(timezone.utc) - timedelta(minutes=2)
    found = await provider.lookup(message(105, to=to), since)
    assert found is not None and found.provider_message_id == server.messages[-1].serial_no
    pulls = [c.params for c in server.calls if c.action != "SendSms"]
    assert len(pulls) > 1 and {p["Offset"] for p in pulls} == {0}  # Tencent takes no offset:
    first = pulls[0]  # a full page is looked at again in halves of its time window
    assert all(first["BeginTime"] <= p["BeginTime"] <= p["EndTime"] <= first["EndTime"] for p in pulls)
    assert await provider.lookup(message(106, to=to), since) is None  # not there: every page seen


async def test_a_lookup_reaches_back_seven_days_at_most(
    provider: TencentProvider, server: TencentServer
) -> None:
    await provider.send(message(1))  # a run created 8 days ago, approved and sent now
    created = datetime.now(timezone.utc) - timedelta(days=8)
    found = await provider.lookup(message(1), created)
    assert found is not None and found.provider_message_id == server.messages[0].serial_no
    begin = server.calls[-1].params["BeginTime"]
    assert created.timestamp() + 86400 < begin < time.time() - 6 * 86400  # not refused by Tencent


async def test_records_without_session_context_prove_nothing(
    provider: TencentProvider, server: TencentServer
) -> None:
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    await provider.send(message(1))
    server.messages[0].session_context = ""  # Tencent returns SessionContext only where enabled
    with pytest.raises(AmbiguousError, match="SessionContext"):
        await provider.lookup(message(1), since)


async def test_a_lookup_that_fails_is_transient(provider: TencentProvider, server: TencentServer) -> None:
    server.fail_reads(1)
    with pytest.raises(TransientError) as info:
        await provider.lookup(message(1), datetime.now(timezone.utc))
    assert info.value.code == "lookup" and info.value.retryable
    assert await provider.lookup(message(1), datetime.now(timezone.utc)) is None


# -- settings -----------------------------------------------------------------------------
def test_credentials_default_to_tencents_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TENCENTCLOUD_SECRET_ID", raising=False)
    monkeypatch.delenv("TENCENTCLOUD_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY"):
        TencentProvider("tencent", {"sdk_app_id": SDK_APP_ID})
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDfromenv")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "key-from-env")
    p = TencentProvider("tencent", {"sdk_app_id": SDK_APP_ID})
    assert (p.options.secret_id, p.options.secret_key) == ("AKIDfromenv", "key-from-env")
    assert p.describe() == f"tencent (https://sms.tencentcloudapi.com, SmsSdkAppId {SDK_APP_ID})"
    assert "key-from-env" not in p.describe()


@pytest.mark.parametrize(
    "over, words",
    [
        ({"sdk_app_id": ""}, "needs sdk_app_id"),
        ({"protocol": "ftp"}, "protocol must be http or https"),
        ({"endpoint": "http://127.0.0.1:9"}, "endpoint is host[:port]"),
        ({"timeout": 0}, "timeout must be more than 0"),
    ],
)
def test_settings_that_cannot_work_are_refused(over: dict[str, Any], words: str) -> None:
    table = {"secret_id": SECRET_ID, "secret_key": SECRET_KEY, "sdk_app_id": SDK_APP_ID}
    with pytest.raises(ConfigError, match=r"\[providers\.tencent\] " + words.replace("[", r"\[")):
        TencentProvider("tencent", table | over)
