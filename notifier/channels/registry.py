"""Building providers from config: `[providers.NAME]`, kind = its `kind` key or NAME."""
from __future__ import annotations

from ..config import Config
from ..errors import ConfigError
from ..status import Channel
from .base import Provider
from .letter import LetterProvider
from .outbox import OutboxProvider
from .smtp import SmtpProvider
from .twilio import TwilioProvider

KINDS: dict[str, type[Provider]] = {"outbox": OutboxProvider, "letter": LetterProvider, "smtp": SmtpProvider,
                                 "twilio": TwilioProvider}


def build_provider(config: Config, name: str) -> Provider:
    settings = config.provider_settings(name)
    kind = str(settings.get("kind", name))
    cls = KINDS.get(kind)
    if cls is None:
        raise ConfigError(f"{config.where()}: [providers.{name}] has unknown kind {kind!r}; known: {', '.join(KINDS)}")
    return cls(name, settings, config.base_dir)  # type: ignore[call-arg]


def providers_for(config: Config) -> dict[Channel, Provider]:
    """The first configured provider of each channel (failover between several comes later)."""
    out: dict[Channel, Provider] = {}
    built: dict[str, Provider] = {}
    for channel, settings in config.channels.items():
        name = settings.providers[0]
        provider = built.get(name) or build_provider(config, name)
        if channel not in provider.channels:
            raise ConfigError(f"{config.where()}: provider {name!r} cannot send {channel.value}")
        built[name] = out[channel] = provider
    return out
