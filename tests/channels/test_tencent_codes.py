"""Tencent's codes -> the kind of error they are and a reason staff can read; report words -> our
statuses. Each code is also sent by the Tencent-compatible server, per number or for the whole
request, and must come back from TencentProvider as the matching ProviderError class."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from notifier.channels.base import OutboundMessage
from notifier.channels.templated import TemplateCall
from notifier.channels.tencent import TencentProvider
from notifier.channels.tencent.codes import CODES, OPTED_OUT, TENCENT_STATUS, Kind, classify
from notifier.errors import AccountError, PermanentError, ProviderError, TransientError
from notifier.status import Channel, DeliveryStatus
from tests.support.tencent_server import (
    SDK_APP_ID,
    SECRET_ID,
    SECRET_KEY,
    SIGN,
    TEMPLATE_ID,
    Fault,
    TencentServer,
)

ERRORS: dict[Kind, type[ProviderError]] = {
    Kind.PERMANENT: PermanentError,
    Kind.TRANSIENT: TransientError,
    Kind.ACCOUNT: AccountError,
}

CASES = [
    # this number / this message, for good
    ("InvalidParameterValue.IncorrectPhoneNumber", Kind.PERMANENT, "手机号格式错误"),
    (OPTED_OUT, Kind.PERMANENT, "退订"),
    ("FailedOperation.TemplateParamSetNotMatchApprovedTemplate", Kind.PERMANENT, "模板变量"),
    ("FailedOperation.ContainSensitiveWord", Kind.PERMANENT, "敏感词"),
    ("InvalidParameterValue.ProhibitedUseUrlInTemplateParameter", Kind.PERMANENT, "网址"),
    ("InvalidParameterValue.TemplateParameterLengthLimit", Kind.PERMANENT, "长度"),
    ("LimitExceeded.PhoneNumberCountLimit", Kind.PERMANENT, "200"),
    # not now: rate and per-number limits, Tencent unavailable
    ("LimitExceeded.DeliveryFrequencyLimit", Kind.TRANSIENT, "频率"),
    ("LimitExceeded.PhoneNumberDailyLimit", Kind.TRANSIENT, "当日"),
    ("LimitExceeded.PhoneNumberOneHourLimit", Kind.TRANSIENT, "1 小时"),
    ("LimitExceeded.PhoneNumberThirtySecondLimit", Kind.TRANSIENT, "30 秒"),
    ("RequestLimitExceeded", Kind.TRANSIENT, "频繁"),
    ("RequestLimitExceeded.IPLimitExceeded", Kind.TRANSIENT, "RequestLimitExceeded.IPLimitExceeded"),
    ("InternalError.Timeout", Kind.TRANSIENT, "超时"),
    ("InternalError.SendAndRecvFail", Kind.TRANSIENT, "InternalError.SendAndRecvFail"),
    # the account, for everyone
    ("FailedOperation.InsufficientBalanceInSmsPackage", Kind.ACCOUNT, "余量不足"),
    ("FailedOperation.SignatureIncorrectOrUnapproved", Kind.ACCOUNT, "签名"),
    ("FailedOperation.TemplateIncorrectOrUnapproved", Kind.ACCOUNT, "模板未审批"),
    ("UnauthorizedOperation.ServiceSuspendDueToArrears", Kind.ACCOUNT, "欠费"),
    ("UnauthorizedOperation.SdkAppIdIsDisabled", Kind.ACCOUNT, "禁用"),
    ("UnauthorizedOperation.SomethingNew", Kind.ACCOUNT, "UnauthorizedOperation.SomethingNew"),
    ("AuthFailure.SignatureFailure", Kind.ACCOUNT, "secret_key"),
    ("AuthFailure.TokenFailure", Kind.ACCOUNT, "AuthFailure.TokenFailure"),
    ("LimitExceeded.AppDailyLimit", Kind.ACCOUNT, "当日"),
    # unknown families are permanent: never a hopeful retry
    ("FailedOperation.SomethingNew", Kind.PERMANENT, "FailedOperation.SomethingNew"),
    ("MadeUp", Kind.PERMANENT, "MadeUp"),
]


@pytest.mark.parametrize("code, kind, words", CASES)
def test_each_code_has_its_kind_and_a_readable_reason(code: str, kind: Kind, words: str) -> None:
    meaning = classify(code)
    assert meaning.kind is kind
    assert words in meaning.reason
    if code in CODES:
        zh, _, en = meaning.reason.partition(" / ")
        assert zh and en and en.isascii(), meaning.reason  # Chinese for staff, English for logs


@pytest.mark.parametrize(
    "word, status",
    [("SUCCESS", DeliveryStatus.DELIVERED), ("FAIL", DeliveryStatus.UNDELIVERED)],
)
def test_report_words(word: str, status: DeliveryStatus) -> None:
    assert TENCENT_STATUS[word] is status


def test_only_documented_report_words() -> None:
    assert set(TENCENT_STATUS) == {"SUCCESS", "FAIL"}


@pytest.fixture
async def server() -> AsyncIterator[TencentServer]:
    async with TencentServer() as s:
        yield s


@pytest.fixture
async def provider(server: TencentServer) -> AsyncIterator[TencentProvider]:
    table = {"secret_id": SECRET_ID, "secret_key": SECRET_KEY, "sdk_app_id": SDK_APP_ID}
    p = TencentProvider("tencent", table | {"endpoint": server.endpoint, "protocol": "http", "timeout": 5})
    await p.open()
    yield p
    await p.close()


def _message(i: int) -> OutboundMessage:
    call = TemplateCall(TEMPLATE_ID, SIGN, (("name", "张三"), ("amount", "120.00")))
    return OutboundMessage(
        i, 1, Channel.SMS, f"R{i}", f"+86139000000{i:02d}", "张三", "body", templates={"tencent": call}
    )


@pytest.mark.parametrize("code, kind, words", CASES)
async def test_a_numbers_code_comes_back_as_its_error_for_that_number_only(
    code: str, kind: Kind, words: str, provider: TencentProvider, server: TencentServer
) -> None:
    server.fail_number("+8613900000002", code)
    ok, refused = await provider.send_batch([_message(1), _message(2)])
    assert not isinstance(ok, ProviderError) and ok.status is DeliveryStatus.SENT
    assert type(refused) is ERRORS[kind] and refused.code == code and words in refused.message
    assert "139****0002" in refused.message and "13900000002" not in refused.message  # masked


@pytest.mark.parametrize("code, kind, words", CASES)
async def test_a_requests_code_is_raised_for_the_whole_request(
    code: str, kind: Kind, words: str, provider: TencentProvider, server: TencentServer
) -> None:
    server.fail_next(Fault.error(code))
    with pytest.raises(ProviderError) as info:
        await provider.send_batch([_message(1), _message(2)])
    assert type(info.value) is ERRORS[kind] and info.value.code == code
    assert server.messages == []
