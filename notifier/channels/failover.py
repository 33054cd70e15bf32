"""Failover between the providers of one channel (`[channels.sms] providers = [...]`, in order).

After `threshold` consecutive transient failures a provider rests for `cooldown` seconds and
the next one in order takes over; the first healthy provider in order is always preferred, so
traffic returns once the cool-down ends.

An account-level refusal (AccountError: balance, suspension, day limit, signature or template
not approved) pauses the provider at once, for everyone, for `pause_for`: no message can pass
there until a person acts. A paused provider is never chosen, not even when every other one
rests; when every provider of a channel is paused the channel waits (`available` is None).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .base import Provider


@dataclass
class ProviderChain:
    providers: list[Provider]
    threshold: int = 3
    cooldown: timedelta = timedelta(seconds=60)
    failures: dict[str, int] = field(default_factory=dict)
    resting_until: dict[str, datetime] = field(default_factory=dict)
    pause_for: timedelta = timedelta(minutes=15)
    paused_until: dict[str, datetime] = field(default_factory=dict)

    def current(self, now: datetime) -> Provider:
        """The provider to use now; with every provider paused, the one paused soonest back."""
        return self.available(now) or min(self.providers, key=lambda p: self.paused_until[p.name])

    def available(self, now: datetime) -> Provider | None:
        """The first provider neither paused nor resting; else the resting one soonest back
        (not paused); None when every provider is paused."""
        usable = [p for p in self.providers if not self.paused(p, now)]
        for p in usable:
            if self.resting_until.get(p.name, now) <= now:
                return p
        return min(usable, key=lambda p: self.resting_until[p.name]) if usable else None

    def paused(self, provider: Provider, now: datetime) -> bool:
        return self.paused_until.get(provider.name, now) > now

    def pause(self, provider: Provider, now: datetime) -> bool:
        """An account-level refusal: out of service for everyone for `pause_for`. True when this
        call paused it (False: it was paused already, by another message of the same moment)."""
        if self.paused(provider, now):
            return False
        self.paused_until[provider.name] = now + self.pause_for
        return True

    def named(self, name: str | None) -> Provider | None:
        return next((p for p in self.providers if p.name == name), None)

    def succeeded(self, provider: Provider) -> None:
        self.failures[provider.name] = 0

    def failed(self, provider: Provider, now: datetime) -> bool:
        """Count a transient failure; True when this one takes the provider out of service."""
        n = self.failures[provider.name] = self.failures.get(provider.name, 0) + 1
        if (
            n >= self.threshold
            and len(self.providers) > 1
            and self.resting_until.get(provider.name, now) <= now
        ):
            self.resting_until[provider.name] = now + self.cooldown
            self.failures[provider.name] = 0
            return True
        return False
