"""`[providers.outbox]` settings."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import ProviderSettings


@dataclass(frozen=True)
class OutboxSettings(ProviderSettings):
    dir: str = "outbox"  # relative to the config file's folder
