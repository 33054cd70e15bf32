"""A TwilioProvider's settings (and a project's config) pointed at the local TwilioServer, and the
SMS the provider tests send: a real county notice in Chinese, long enough for two segments."""

from __future__ import annotations

from typing import Any

from notifier.channels.base import OutboundMessage
from notifier.status import Channel

from .twilio_server import ACCOUNT_SID, AUTH_TOKEN, TwilioServer

SENDER = "+15005550006"
CALLBACK = "https://notice.example.gov.cn/twilio/status"
TO = "+8613800000001"
BODY = (
    "【县农业农村局】王一您好：您家承包耕地5.5亩，2026年耕地地力保护补贴标准每亩¥110.00，预计¥605.00，"
    "将打入惠农资金账户。核实请登录https://example.gov.cn/zwgk/2026/nb003。回TD退订"
)


def settings(server: TwilioServer, **over: Any) -> dict[str, Any]:
    return {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from": SENDER,
        "base_url": server.url,
        "status_callback_url": CALLBACK,
        "timeout": 5,
        **over,
    }


def sms_config(
    server: TwilioServer, sending: str = "", twilio: str = "", providers: str = '["twilio"]'
) -> str:
    """A project's config text sending SMS through this server, with no wait between attempts;
    `sending` and `twilio` add keys to those tables."""
    return f"""
[sending]
retry_base_seconds = 0
{sending}
[channels.sms]
providers = {providers}
[providers.twilio]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
from = "{SENDER}"
base_url = "{server.url}"
{twilio}
"""


def message(delivery_id: int = 7, to: str = TO, body: str = BODY) -> OutboundMessage:
    return OutboundMessage(
        delivery_id=delivery_id,
        run_id=1,
        channel=Channel.SMS,
        resident_id="F01",
        recipient=to,
        recipient_name="王一",
        body=body,
    )
