"""Twilio's words and numbers, and what they mean to us: statuses, error codes, readable reasons.

Plain dicts beside the provider (tested with parametrize); a word not in TWILIO_STATUS is a
malformed receipt (400), never a guess.
"""

from __future__ import annotations

from ...status import DeliveryStatus as S

TWILIO_STATUS: dict[str, S] = {
    # Twilio holds the message: for us it is `sent` (the provider took it), not yet delivered.
    "accepted": S.SENT,
    "scheduled": S.SENT,
    "queued": S.SENT,
    "sending": S.SENT,
    "sent": S.SENT,  # handed to the carrier; only `delivered` means the handset has it
    "delivered": S.DELIVERED,
    "read": S.DELIVERED,  # WhatsApp / RCS read receipts: delivered and then some
    "undelivered": S.UNDELIVERED,
    "failed": S.FAILED,
}
"""Twilio MessageStatus -> our status."""

CARRIER_REASONS: dict[str, str] = {
    "30001": "队列溢出 / queue overflow",
    "30002": "账户被暂停 / account suspended",
    "30003": "手机无法接通（关机或不在服务区）/ unreachable destination handset",
    "30004": "短信被拦截 / message blocked",
    "30005": "号码不存在 / unknown destination handset",
    "30006": "固定电话或运营商无法送达 / landline or unreachable carrier",
    "30007": "运营商过滤 / carrier violation (filtered)",
    "30008": "未知错误 / unknown error",
}
"""Twilio delivery error codes (ErrorCode on undelivered / failed receipts) staff can read."""

REASONS: dict[int, str] = {
    21211: "号码无效 / invalid 'To' phone number",
    21614: "不是手机号码，无法接收短信 / 'To' number is not a mobile number",
    21610: "该号码已退订短信 / recipient has unsubscribed (replied STOP)",
    21408: "未开通向该地区发送短信的权限 / permission to send SMS to this region is not enabled",
    21612: "无法从该发送号码送达此号码 / 'To' number cannot be reached from this sender",
    20003: "Twilio 认证失败，请检查 account_sid 和 auth_token / authentication failed",
    20429: "请求过多，稍后重试 / too many requests, retry later",
}
"""Twilio API error codes with a reason staff can read (zh / en); all but 20429 are permanent."""

AUTH_FAILED = 20003
TOO_MANY_REQUESTS = 20429


def retryable(http_status: int, code: int) -> bool:
    """A refusal that may pass later: rate limited (429 / 20429) or Twilio unavailable (5xx)."""
    return http_status == 429 or code == TOO_MANY_REQUESTS or http_status >= 500


def refusal_reason(http_status: int, code: int) -> str:
    """The readable reason of an API refusal: the code's own, else what the HTTP status says."""
    if code in REASONS:
        return REASONS[code]
    if http_status >= 500:
        return f"Twilio 暂时不可用 / Twilio unavailable (HTTP {http_status})"
    return f"Twilio 拒绝 / Twilio refused (HTTP {http_status})"
