"""`[providers.aliyun]` settings. The AccessKey defaults to ALIBABA_CLOUD_ACCESS_KEY_ID /
ALIBABA_CLOUD_ACCESS_KEY_SECRET, the SDK's own convention, when the table has none; users write
`access_key_secret = "env:ALIYUN_SMS_SECRET"` to name another variable."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..settings import ProviderSettings, from_env


@dataclass(frozen=True)
class AliyunSettings(ProviderSettings):
    access_key_id: str = field(default="", metadata=from_env("ALIBABA_CLOUD_ACCESS_KEY_ID"))
    access_key_secret: str = field(default="", metadata=from_env("ALIBABA_CLOUD_ACCESS_KEY_SECRET"))
    endpoint: str = "dysmsapi.aliyuncs.com"  # host[:port]; a local server in tests: 127.0.0.1:PORT
    protocol: str = "https"  # http only for a local server
    timeout: float = 5.0  # seconds to wait for an answer; a timeout is ambiguous (Aliyun may have sent)
    connect_timeout: float = 2.0  # seconds to connect; nothing was sent when this runs out
    batch: bool = True  # SendBatchSms: up to 100 numbers of one template per request
    max_variable_length: int = 35  # characters per template variable (Aliyun's limit for notices)
    receipt_token: str = ""  # the secret path token of SmsReport / SmsUp pushes (write it as env:NAME)
    receipt_networks: list[str] = field(default_factory=list)  # source networks pushes may come from
    rate_per_second: float = 100.0  # requests (a batch is one request)
    per_number_seconds: float = 60.0  # Aliyun refuses bursts to one number (isv.BUSINESS_LIMIT_CONTROL)
