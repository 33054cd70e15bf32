"""Building providers from config: `[providers.NAME]`, kind = its `kind` key or NAME."""

from __future__ import annotations

from datetime import timedelta

from ..config import Config
from ..errors import ConfigError
from ..status import Channel
from .base import Provider
from .failover import ProviderChain
from .letter import LetterProvider
from .outbox import OutboxProvider
from .smtp import SmtpProvider
from .twilio import TwilioProvider

KINDS: dict[str, type[Provider]] = {
    "outbox": OutboxProvider,
    "letter": LetterProvider,
    "smtp": SmtpProvider,
    "twilio": TwilioProvider,
}


def build_provider(config: Config, name: str) -> Provider:
    settings = config.provider_settings(name)
    kind = str(settings.get("kind", name))
    cls = KINDS.get(kind)
    if cls is None:
        raise ConfigError(
            f"{config.where()}: [providers.{name}] has unknown kind {kind!r}; known: {', '.join(KINDS)}"
        )
    return cls(name, settings, config.base_dir)  # type: ignore[call-arg]


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
        out[channel] = ProviderChain(chain, s.failover_after, timedelta(seconds=s.failover_cooldown_seconds))
    return out
