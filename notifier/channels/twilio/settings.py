"""`[providers.twilio]` settings. The account credentials default to the environment variables
TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN, Twilio's own convention, when the table has none."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..settings import ProviderSettings, from_env, key


@dataclass(frozen=True)
class TwilioSettings(ProviderSettings):
    account_sid: str = field(default="", metadata=from_env("TWILIO_ACCOUNT_SID"))
    auth_token: str = field(default="", metadata=from_env("TWILIO_AUTH_TOKEN"))
    from_: str = field(default="", metadata=key("from"))  # the sender number, or:
    messaging_service_sid: str = ""
    status_callback_url: str = ""  # where Twilio posts receipts, e.g. https://HOST/twilio/status
    base_url: str = ""  # a Twilio-compatible server (tests, a local gateway); empty: api.twilio.com
    timeout: float = 10.0  # seconds; a timeout is ambiguous (Twilio may have accepted)
    rate_per_second: float = 10.0
