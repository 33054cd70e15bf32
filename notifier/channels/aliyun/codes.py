"""Aliyun SMS's words and codes, and what they mean to us: the API's error codes (whether a retry
helps, whether the whole account is stopped), receipt statuses and readable reasons.

Plain dicts beside the provider (tested with parametrize). A code in none of them is treated as
permanent for this message: a guess that retries could only turn into duplicates or spam.
"""

from __future__ import annotations

from enum import StrEnum

from ...status import DeliveryStatus as S


class Kind(StrEnum):
    PERMANENT = "permanent"  # this message can never pass: fail it, try the rule's next channel
    TRANSIENT = "transient"  # not now: retry later (rate limits, Aliyun unavailable)
    ACCOUNT = "account"  # the account cannot send for anyone: pause the provider, next one takes over


OK = "OK"

PERMANENT: dict[str, str] = {
    "isv.MOBILE_NUMBER_ILLEGAL": "手机号码格式错误 / invalid mobile number",
    "isv.MOBILE_COUNT_OVER_LIMIT": "手机号码数量超过限制 / too many numbers in one request",
    "isv.TEMPLATE_MISSING_PARAMETERS": "模板缺少变量 / template variables missing",
    "isv.TEMPLATE_PARAMS_ILLEGAL": "模板变量里包含非法字符 / illegal characters in a template variable",
    "isv.INVALID_JSON_PARAM": "模板变量不是合法的 JSON / template variables are not valid JSON",
    "isv.INVALID_PARAMETERS": "参数格式不正确 / invalid parameters",
    "isv.PARAM_LENGTH_LIMIT": "变量长度超过限制 / a template variable is too long",
    "isv.PARAM_NOT_SUPPORT_URL": "变量不支持传入网址 / a template variable may not hold a URL",
    "isv.BLACK_KEY_CONTROL_LIMIT": "内容含有黑名单关键字 / the text contains a blocked keyword",
    "isv.EXTEND_CODE_ERROR": "扩展码使用错误 / extension code misused",
    "isv.DOMESTIC_NUMBER_NOT_SUPPORTED": "国际模板不能发往境内号码 / template cannot send to this number",
    "isv.MOBILE_IN_BLACK": "该号码在黑名单中 / the number is blacklisted",
    "isp.RAM_PERMISSION_DENY": "RAM 权限不足，请检查 AccessKey 的授权 / the RAM user may not send SMS",
    "MissingPhoneNumbers": "缺少手机号码 / no phone number",
    "MissingSignName": "缺少签名 / no signature",
    "MissingTemplateCode": "缺少模板 Code / no template code",
}
"""Refused for good for this message (fail it; the rule's next channel may reach the resident)."""

TRANSIENT: dict[str, str] = {
    "isv.BUSINESS_LIMIT_CONTROL": "触发号码或账号流控（每号码每分钟、每小时条数）/ rate limited, retry later",
    "Throttling.User": "请求过于频繁，被限流 / throttled, retry later",
    "Throttling.Api": "接口被限流 / throttled, retry later",
    "Throttling": "请求被限流 / throttled, retry later",
    "isp.SYSTEM_ERROR": "阿里云系统错误 / Aliyun system error",
    "isp.GATEWAY_ERROR": "阿里云网关错误 / Aliyun gateway error",
    "ServiceUnavailable": "服务暂时不可用 / service unavailable",
    "InternalError": "阿里云内部错误 / Aliyun internal error",
}
"""Not accepted this time: a retry after backoff can pass (the API refused before sending)."""

ACCOUNT: dict[str, str] = {
    "isv.AMOUNT_NOT_ENOUGH": "账户余额不足，请充值 / account balance too low",
    "isv.OUT_OF_SERVICE": "业务停机（欠费或被停用）/ the account is out of service",
    "isv.DAY_LIMIT_CONTROL": "已达到账户每日发送上限 / the account's daily limit is reached",
    "isv.ACCOUNT_NOT_EXISTS": "账户不存在 / no such account",
    "isv.ACCOUNT_ABNORMAL": "账户异常 / the account is abnormal",
    "isv.PRODUCT_UN_SUBSCRIPT": "未开通短信服务 / SMS is not enabled for this account",
    "isv.PRODUCT_UNSUBSCRIBE": "产品未开通 / SMS is not enabled for this account",
    "isv.SMS_SIGNATURE_ILLEGAL": "签名未审核通过或不存在 / signature not approved",
    "isv.SMS_SIGN_ILLEGAL": "签名未审核通过或不存在 / signature not approved",
    "isv.SMS_TEMPLATE_ILLEGAL": "模板未审核通过或不存在 / template not approved",
    "isv.SMS_SIGNATURE_SCENE_ILLEGAL": "签名与模板类型不匹配 / signature not approved for this template type",
    "isv.TEMPLATE_COUNT_OVER_LIMIT": "模板使用超过限制 / template quota exceeded",
    "InvalidAccessKeyId.NotFound": "AccessKey ID 不存在 / unknown AccessKey ID",
    "InvalidAccessKeyId.Inactive": "AccessKey 已停用 / AccessKey disabled",
    "SignatureDoesNotMatch": "AccessKey Secret 不正确（签名不匹配）/ wrong AccessKey secret",
    "IncompleteSignature": "请求签名不完整 / incomplete request signature",
    "Forbidden.RAM": "RAM 用户无权发送短信 / the RAM user may not send SMS",
}
"""The account cannot send for anyone: the provider is paused, the next in failover order takes over."""

RECEIPT_STATUS: dict[str, S] = {"true": S.DELIVERED, "false": S.UNDELIVERED}
"""SmsReport `success` -> our status (Aliyun's receipts report only the handset's final word)."""

DETAIL_STATUS: dict[int, S] = {1: S.SENT, 2: S.UNDELIVERED, 3: S.DELIVERED}
"""QuerySendDetails SendStatus (1 waiting for the receipt, 2 failed, 3 delivered) -> our status."""

CARRIER_REASONS: dict[str, str] = {
    "DELIVERED": "已送达 / delivered",
    "MK:0000": "手机关机或不在服务区 / handset off or out of coverage",
    "MK:0001": "号码不存在或已停机 / number does not exist or is suspended",
    "MK:0004": "手机存储已满 / handset memory full",
    "MK:0005": "运营商拦截 / blocked by the carrier",
    "IB:0008": "运营商流控 / carrier rate limit",
    "UNDELIV": "无法送达 / undeliverable",
    "EXPIRED": "短信过期未送达 / expired before delivery",
    "REJECTD": "运营商拒收 / rejected by the carrier",
    "DB:0141": "号码在运营商黑名单中 / number on the carrier's blacklist",
}
"""Carrier error codes on receipts (err_code) staff can read."""


def kind_of(code: str, http_status: int = 200) -> Kind:
    """What an API error code means; unknown codes: by the HTTP status (5xx and 429 transient,
    everything else permanent), and any `Throttling.*` is a rate limit."""
    if code in ACCOUNT:
        return Kind.ACCOUNT
    if code in TRANSIENT or code.startswith("Throttling") or http_status >= 500 or http_status == 429:
        return Kind.TRANSIENT
    return Kind.PERMANENT


def reason(code: str, http_status: int = 200) -> str:
    """The readable reason of an API refusal: the code's own, else what the HTTP status says."""
    for table in (PERMANENT, TRANSIENT, ACCOUNT):
        if code in table:
            return table[code]
    if code.startswith("Throttling"):
        return TRANSIENT["Throttling"]
    if http_status >= 500:
        return f"阿里云短信暂时不可用 / Aliyun SMS unavailable (HTTP {http_status})"
    return f"阿里云短信拒绝 / Aliyun SMS refused ({code or f'HTTP {http_status}'})"
