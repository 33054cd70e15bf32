"""`[providers.tencent]` settings. The API key defaults to the environment variables
TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY, the Tencent Cloud SDK's own convention, when the
table has none; the receipts' path token is a secret too (`"env:TENCENT_SMS_CALLBACK_TOKEN"`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..settings import ProviderSettings, from_env


@dataclass(frozen=True)
class TencentSettings(ProviderSettings):
    secret_id: str = field(default="", metadata=from_env("TENCENTCLOUD_SECRET_ID"))
    secret_key: str = field(default="", metadata=from_env("TENCENTCLOUD_SECRET_KEY"))
    sdk_app_id: str = ""  # SmsSdkAppId: the application created in the SMS console (1400...)
    region: str = "ap-guangzhou"
    endpoint: str = ""  # host[:port] of a Tencent-compatible server (tests); empty: sms.tencentcloudapi.com
    protocol: str = "https"  # http only for a local server
    timeout: float = 10.0  # seconds; a timeout is ambiguous (Tencent may have accepted)
    callback_token: str = ""  # the secret last part of the receipt / reply URLs set in the console
    source_networks: list[str] = field(default_factory=list)  # e.g. ["203.0.113.0/24"]; empty: any
    max_variable_length: int = 35  # characters per template variable (rules check)
    per_number_seconds: float = 30.0  # Tencent's default: one message per number per 30 s
