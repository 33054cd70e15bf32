"""Tencent Cloud SMS's words and codes, and what they mean to us: receipt statuses, error codes,
readable reasons and the kind of error each one is.

Plain dicts beside the provider (tested with parametrize). Codes come from Tencent's error code
list for SMS API 3.0 (document 382/59177, the SDK's `sms.v20210111.errorcodes`) and the common
API 3.0 codes (AuthFailure.*, RequestLimitExceeded, InternalError). A code not listed is judged by
its family (the part before the dot: every AuthFailure.* is the account's, every InternalError.*
passes later); a family not known either is permanent, never a hopeful retry. A report word not in
TENCENT_STATUS is a malformed receipt (400), never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ...status import DeliveryStatus as S


class Kind(StrEnum):
    PERMANENT = "permanent"  # this number or this message is refused for good
    TRANSIENT = "transient"  # not now (rate or per-number limits, Tencent unavailable): retry later
    ACCOUNT = "account"  # the account cannot send for anyone: pause the provider, fail over


@dataclass(frozen=True)
class Code:
    kind: Kind
    reason: str  # zh / en, for staff


OK = "Ok"  # SendStatus.Code of an accepted number
OPTED_OUT = "FailedOperation.PhoneNumberInBlacklist"
"""The number unsubscribed (回TD退订) or is on a carrier's do-not-disturb list: permanent, as
Twilio's 21610."""

_P, _T, _A = Kind.PERMANENT, Kind.TRANSIENT, Kind.ACCOUNT

CODES: dict[str, Code] = {
    # -- this number or this message, for good
    "InvalidParameterValue.IncorrectPhoneNumber": Code(_P, "手机号格式错误 / incorrect phone number"),
    "FailedOperation.PhoneNumberParseFail": Code(_P, "手机号无法解析 / phone number cannot be parsed"),
    OPTED_OUT: Code(
        _P, "该号码已退订短信或在免打扰名单中 / recipient has unsubscribed or is on a do-not-disturb list"
    ),
    "FailedOperation.TemplateParamSetNotMatchApprovedTemplate": Code(
        _P, "模板变量与审核通过的模板不符 / template parameters do not match the approved template"
    ),
    "FailedOperation.ContainSensitiveWord": Code(_P, "短信内容含敏感词 / message contains sensitive words"),
    "InvalidParameterValue.ContentLengthLimit": Code(_P, "短信内容过长 / message too long"),
    "InvalidParameterValue.TemplateParameterFormatError": Code(
        _P, "模板变量格式错误 / template parameter format error"
    ),
    "InvalidParameterValue.TemplateParameterLengthLimit": Code(
        _P, "模板变量超过长度限制 / template parameter too long"
    ),
    "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter": Code(
        _P, "模板变量中不得含网址 / no URL allowed in a template parameter"
    ),
    "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber": Code(
        _P, "一次请求不能同时含境内和境外号码 / domestic and international numbers in one request"
    ),
    "UnsupportedOperation.ChineseMainlandTemplateToGlobalPhone": Code(
        _P, "国内模板不能发往境外号码 / mainland template sent to a number abroad"
    ),
    "UnsupportedOperation.UnsupportedRegion": Code(_P, "不支持向该地区发送 / region not supported"),
    "LimitExceeded.PhoneNumberCountLimit": Code(
        _P, "一次请求超过 200 个号码 / more than 200 numbers in one request"
    ),
    "MissingParameter.EmptyPhoneNumberSet": Code(_P, "未填写手机号 / no phone number given"),
    "FailedOperation.FailResolvePacket": Code(_P, "请求包解析失败 / request could not be parsed"),
    "FailedOperation.JsonParseFail": Code(_P, "请求包解析失败 / request JSON could not be parsed"),
    # -- not now: rate and per-number limits, Tencent unavailable
    "LimitExceeded.DeliveryFrequencyLimit": Code(
        _T, "命中发送频率限制，稍后重试 / delivery frequency limit hit, retry later"
    ),
    "LimitExceeded.PhoneNumberThirtySecondLimit": Code(
        _T, "该号码 30 秒内发送过多 / too many messages to this number within 30 s"
    ),
    "LimitExceeded.PhoneNumberOneHourLimit": Code(
        _T, "该号码 1 小时内发送过多 / too many messages to this number within an hour"
    ),
    "LimitExceeded.PhoneNumberDailyLimit": Code(
        _T, "该号码当日发送条数已达上限 / daily limit for this number reached"
    ),
    "LimitExceeded.PhoneNumberSameContentDailyLimit": Code(
        _T, "该号码当日相同内容已达上限 / daily limit of the same content to this number reached"
    ),
    "LimitExceeded.GlobalSmsSendingRateLimit": Code(_T, "发送速率超限 / sending rate limit reached"),
    "FailedOperation.MarketingSendTimeConstraint": Code(
        _T, "营销短信只能在 8 点到 22 点发送 / marketing SMS only between 08:00 and 22:00"
    ),
    "RequestLimitExceeded": Code(_T, "请求过于频繁，稍后重试 / too many requests, retry later"),
    "InternalError.Timeout": Code(_T, "腾讯云处理超时，可重试 / Tencent timed out handling the request"),
    "InternalError.OtherError": Code(_T, "腾讯云内部错误 / Tencent internal error"),
    # -- the account, for everyone: pause the provider
    "FailedOperation.InsufficientBalanceInSmsPackage": Code(
        _A, "短信套餐包余量不足 / SMS package balance insufficient"
    ),
    "UnauthorizedOperation.ServiceSuspendDueToArrears": Code(
        _A, "欠费停止服务 / service suspended for arrears"
    ),
    "FailedOperation.SignatureIncorrectOrUnapproved": Code(
        _A, "短信签名未审批或格式错误 / signature not approved or malformed"
    ),
    "FailedOperation.TemplateIncorrectOrUnapproved": Code(
        _A, "短信模板未审批或内容不匹配 / template not approved or text does not match"
    ),
    "FailedOperation.TemplateUnapprovedOrNotExist": Code(
        _A, "短信模板未审批或不存在 / template not approved or does not exist"
    ),
    "InvalidParameterValue.SdkAppIdNotExist": Code(_A, "SmsSdkAppId 不存在 / SmsSdkAppId does not exist"),
    "UnauthorizedOperation.SdkAppIdIsDisabled": Code(_A, "SmsSdkAppId 已禁用 / SmsSdkAppId disabled"),
    "UnauthorizedOperation.SmsSdkAppIdVerifyFail": Code(
        _A, "SmsSdkAppId 校验失败 / SmsSdkAppId verification failed"
    ),
    "UnauthorizedOperation.RequestIpNotInWhitelist": Code(
        _A, "请求 IP 不在白名单中 / request IP not in the allowlist"
    ),
    "UnauthorizedOperation.RequestPermissionDeny": Code(_A, "请求没有权限 / request not permitted"),
    "LimitExceeded.AppDailyLimit": Code(_A, "应用当日发送量已达上限 / the app's daily limit reached"),
    "LimitExceeded.AppMainlandChinaDailyLimit": Code(
        _A, "应用当日国内发送量已达上限 / the app's daily mainland limit reached"
    ),
    "LimitExceeded.DailyLimit": Code(_A, "当日发送量已达上限 / daily limit reached"),
    "AuthFailure.SecretIdNotFound": Code(_A, "腾讯云密钥不存在，请检查 secret_id / SecretId not found"),
    "AuthFailure.SignatureFailure": Code(_A, "腾讯云签名错误，请检查 secret_key / request signature invalid"),
    "AuthFailure.SignatureExpire": Code(
        _A, "请求签名过期，请校准服务器时间 / signature expired: check the server clock"
    ),
}
"""Tencent error codes (a whole request's Error.Code, or one number's SendStatus.Code)."""

FAMILIES: dict[str, Kind] = {
    "AuthFailure": _A,  # credentials, signature, CAM permission: nobody can be sent to
    "UnauthorizedOperation": _A,
    "InternalError": _T,
    "RequestLimitExceeded": _T,
    "ResourceUnavailable": _T,
    "ServiceUnavailable": _T,
}
"""How a code not in CODES is judged, by the part before its first dot."""


def classify(code: str) -> Code:
    """What a Tencent code means: its own entry, else its family's kind, else permanent."""
    if code in CODES:
        return CODES[code]
    family = code.split(".", 1)[0]
    kind = FAMILIES.get(family, Kind.PERMANENT)
    return Code(kind, f"腾讯云拒绝 / Tencent refused ({code})")


TENCENT_STATUS: dict[str, S] = {
    "SUCCESS": S.DELIVERED,  # the handset has it
    "FAIL": S.UNDELIVERED,  # the carrier could not deliver it: the rule's next channel is tried
}
"""Tencent report_status (status callbacks, PullSmsSendStatus) -> our status."""

CARRIER_REASONS: dict[str, str] = {
    "DELIVRD": "用户已收到 / delivered",
    "-106": "运营商关键字拦截 / blocked by a carrier keyword filter",
    "002": "关机、停机、无法接通或不在服务区 / handset off, suspended, unreachable or out of coverage",
}
"""Carrier receipt codes (errmsg of FAIL reports) with a reason staff can read; for the rest the
report's own `description` is shown."""
