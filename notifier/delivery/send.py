"""Send: hand one claimed job's stored text to its provider, within the provider's limits
(concurrency and rate), and return what happened as an Outcome. Nothing here writes to the
database; record.py turns outcomes into status changes.

A worker whose lease may have lapsed (the database was too busy to renew it) does not send:
another worker could already be settling (and resending) its rows. That outcome is a
LeaseLapsed error, which gives the attempt back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from ..audit import log as audit
from ..channels.base import OutboundMessage, Provider, SendResult
from ..channels.failover import ProviderChain
from ..channels.ratelimit import TokenBucket
from ..errors import LeaseLapsed, PermanentError, ProviderError, TransientError
from ..status import Channel
from .jobs import Job, Outcome
from .workers import Worker


class Sender:
    """The providers of every channel with their limits, shared by sends and lookups, and the
    failover state of each channel's chain (kept across batches and rounds)."""

    def __init__(
        self,
        chains: dict[Channel, ProviderChain],
        worker: Worker,
        *,
        now: Callable[[], datetime],
        actor: str,
    ) -> None:
        self.chains, self.worker, self.now, self.actor = chains, worker, now, actor
        self.providers = {p.name: p for chain in chains.values() for p in chain.providers}
        self.buckets = {
            p.name: TokenBucket(p.rate_per_second, float(p.settings.get("burst", 1)))
            for p in self.providers.values()
            if p.rate_per_second
        }
        self.limits = {p.name: asyncio.Semaphore(max(1, p.concurrency)) for p in self.providers.values()}

    async def open(self) -> None:
        for p in self.providers.values():
            await p.open()

    async def close(self) -> None:
        for p in self.providers.values():
            await p.close()

    async def send(self, job: Job) -> Outcome:
        provider = self.providers[job.provider]
        async with self.limits[provider.name]:
            bucket = self.buckets.get(provider.name)
            if bucket:
                await bucket.acquire()
            if not self.worker.fresh(self.now()):
                return Outcome(
                    job, error=LeaseLapsed("not sent: this worker's lease could not be renewed in time")
                )
            return await self._call(provider, job)

    async def _call(self, provider: Provider, job: Job) -> Outcome:
        chain = self.chains[job.channel]
        try:
            result = await provider.send(job.message)
        except TransientError as exc:
            return Outcome(job, error=exc, failover=self._failover(chain, provider, exc, job.channel))
        except ProviderError as exc:
            return Outcome(job, error=exc)
        except Exception as exc:  # a provider bug must not leave the row in `sending`
            error = PermanentError(
                f"{provider.name}: unexpected error {exc.__class__.__name__}: {exc}",
                provider.name,
                code="internal",
            )
            return Outcome(job, error=error)
        chain.succeeded(provider)
        return Outcome(job, result=result)

    def _failover(
        self, chain: ProviderChain, provider: Provider, exc: ProviderError, channel: Channel
    ) -> audit.AuditEvent | None:
        """Count a transient failure; the audit event if it took the provider out of service."""
        now = self.now()
        if not chain.failed(provider, now):
            return None
        return audit.AuditEvent(
            self.actor,
            "provider.failover",
            f"channel:{channel.value}",
            {
                "provider": provider.name,
                "next": chain.current(now).name,
                "reason": exc.message,
                "code": exc.code,
                "until": chain.resting_until[provider.name].isoformat(),
            },
        )

    async def lookup(
        self, provider: Provider, message: OutboundMessage, since: datetime
    ) -> SendResult | ProviderError | None:
        """The provider's record of a stored message (never a re-render), within its limits."""
        try:
            async with self.limits[provider.name]:
                return await provider.lookup(message, since)
        except ProviderError as exc:
            return exc
