"""Failover between the providers of one channel (`[channels.sms] providers = [...]`, in order).

After `threshold` consecutive transient failures a provider rests for `cooldown` seconds and
the next one in order takes over; the first healthy provider in order is always preferred, so
traffic returns once the cool-down ends.
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

    def current(self, now: datetime) -> Provider:
        for p in self.providers:
            if self.resting_until.get(p.name, now) <= now:
                return p
        return min(self.providers, key=lambda p: self.resting_until[p.name])  # all resting: the soonest back

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
