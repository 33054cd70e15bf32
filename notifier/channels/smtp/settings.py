"""`[providers.smtp]` settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..settings import ProviderSettings, key


@dataclass(frozen=True)
class SmtpSettings(ProviderSettings):
    host: str = "127.0.0.1"
    port: int = 25
    starttls: bool = False  # STARTTLS after connecting (port 587)
    tls: bool = False  # TLS from the start (port 465)
    username: str = ""  # empty: no login
    password: str = ""  # e.g. "env:SMTP_PASSWORD"
    from_: str = field(default="notice@example.gov.cn", metadata=key("from"))
    connections: int = 4  # the pool size, also the requests in flight at once
    timeout: float = 30.0  # seconds per SMTP command
    rate_per_second: float = 50.0
