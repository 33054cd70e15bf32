"""Building providers from config: `[providers.NAME]`, kind = its `kind` key or NAME.

Adding a provider is one package under channels/ and one line in KINDS.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..config import Config
from ..errors import ConfigError
from ..status import Channel
from .aliyun import AliyunProvider, AliyunWebhooks
from .base import Provider, ProviderContext
from .failover import ProviderChain
from .letter import LetterProvider
from .outbox import OutboxProvider
from .smtp import SmtpProvider
from .tencent import TencentProvider, TencentWebhooks
from .twilio import TwilioProvider, TwilioWebhooks
from .webhooks import Webhooks


@dataclass(frozen=True)
class ProviderKind:
    """What a provider package offers: how to send and, if the provider calls us back, its webhooks."""

    provider: type[Provider]
    webhooks: type[Webhooks] | None = None


KINDS: dict[str, ProviderKind] = {
    "outbox": ProviderKind(OutboxProvider),
    "letter": ProviderKind(LetterProvider),
    "smtp": ProviderKind(SmtpProvider),
    "twilio": ProviderKind(TwilioProvider, TwilioWebhooks),
    "aliyun": ProviderKind(AliyunProvider, AliyunWebhooks),
    "tencent": ProviderKind(TencentProvider, TencentWebhooks),
}


def kind_of(config: Config, name: str) -> str:
    section: dict[str, Any] = config.raw["providers"].get(name) or {}
    return str(section.get("kind", name))


def build_provider(config: Config, name: str) -> Provider:
    settings = config.provider_settings(name)
    kind = kind_of(config, name)
    entry = KINDS.get(kind)
    if entry is None:
        raise ConfigError(
            f"{config.where()}: [providers.{name}] has unknown kind {kind!r}; known: {', '.join(KINDS)}"
        )
    return entry.provider(
        name, settings, ProviderContext(config.base_dir, config.where(), config.serve.public_url)
    )


def providers_for(config: Config) -> dict[Channel, ProviderChain]:
    """Each channel's providers in configured order, one instance per provider name."""
    out: dict[Channel, ProviderChain] = {}
    built: dict[str, Provider] = {}
    s = config.sending
    for channel, settings in config.channels.items():
        chain = []
        for name in settings.providers:
            provider = built.get(name) or build_provider(config, name)
            if channel not in provider.channels:
                raise ConfigError(f"{config.where()}: provider {name!r} cannot send {channel.value}")
            built[name] = provider
            chain.append(provider)
        out[channel] = ProviderChain(
            chain,
            s.failover_after,
            timedelta(seconds=s.failover_cooldown_seconds),
            pause_for=timedelta(seconds=s.account_pause_seconds),
        )
    return out


def webhooks_for(config: Config) -> list[Webhooks]:
    """The webhooks of every kind with a configured `[providers.*]` table, each built from all the
    tables of its kind (a table whose secrets cannot be read is a problem the kind reports)."""
    found: dict[type[Webhooks], tuple[dict[str, Any], list[str]]] = {}
    for name in config.raw["providers"]:
        entry = KINDS.get(kind_of(config, name))
        if entry is None or entry.webhooks is None:
            continue
        tables, problems = found.setdefault(entry.webhooks, ({}, []))
        try:
            tables[name] = config.provider_settings(name)
        except ConfigError as exc:
            problems.append(exc.message)
    return [hooks(tables, problems, config.where()) for hooks, (tables, problems) in found.items()]
