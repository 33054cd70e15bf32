"""Send: hand claimed jobs' stored text to their providers, within the providers' limits
(concurrency, and the rate shared by every worker on the database: sharedrate.py), and return
what happened to each as an Outcome. Jobs for a provider that takes batches (Aliyun's
SendBatchSms, Tencent's SendSms) with the same registered template (its `batch_key`) go in one
request; each still settles on its own. An account-level refusal
(AccountError) pauses the provider for everyone (channels/failover.py) and is audited as
`provider.paused`; jobs still waiting for that provider's turn are then not sent there. Nothing
here writes to the database; record.py turns outcomes into status changes.

A worker whose lease may have lapsed (the database was too busy to renew it) does not send:
another worker could already be settling (and resending) its rows. That outcome is a
LeaseLapsed error, which gives the attempt back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from ..audit import log as audit
from ..channels.base import OutboundMessage, Provider, SendResult
from ..channels.failover import ProviderChain
from ..errors import AccountError, LeaseLapsed, PermanentError, ProviderError, TransientError
from ..masking import mask_text
from ..status import Channel
from .jobs import Job, Outcome
from .sharedrate import shared_bucket
from .workers import Worker

log = logging.getLogger("notifier.delivery")


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
            p.name: shared_bucket(worker, p.name, p.rate_per_second, p.burst)
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
            if (bucket and not await bucket.acquire()) or not self.worker.fresh():
                return Outcome(
                    job, error=LeaseLapsed("not sent: this worker's lease could not be renewed in time")
                )
            held = self._held(provider, [job])
            return held[0] if held else (await self._call(provider, [job]))[0]

    async def send_all(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Every job, in order: one request per job, except that jobs for a provider that sends
        batches (max_batch > 1) with the same registered template and signature (and whatever
        else the provider's batch_key says they must share) go together, up to max_batch per
        request. Each job still gets its own outcome."""
        singles, batches = [], []
        groups: dict[tuple[str, ...], list[Job]] = {}
        for job in jobs:
            provider = self.providers[job.provider]
            call = job.message.templates.get(provider.kind)
            if provider.max_batch > 1 and call is not None:
                key = (provider.name, *provider.batch_key(call))
                group = groups.setdefault(key, [])
                group.append(job)
                if len(group) == provider.max_batch:
                    batches.append(groups.pop(key))
            else:
                singles.append(job)
        batches += groups.values()
        requests: dict[str, int] = {}
        for job in singles:
            requests[job.provider] = requests.get(job.provider, 0) + 1
        for group in batches:
            requests[group[0].provider] = requests.get(group[0].provider, 0) + 1
        for name, n in requests.items():
            if bucket := self.buckets.get(name):
                bucket.expect(n)
        one, many = await asyncio.gather(
            asyncio.gather(*(self.send(j) for j in singles)),
            asyncio.gather(*(self.send_batch(group) for group in batches)),
        )
        by_id = {o.job.id: o for o in [*one, *(o for outcomes in many for o in outcomes)]}
        return [by_id[j.id] for j in jobs]

    async def send_batch(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Jobs for one provider as one request (its rate limit counts requests)."""
        if len(jobs) == 1:
            return [await self.send(jobs[0])]
        provider = self.providers[jobs[0].provider]
        async with self.limits[provider.name]:
            bucket = self.buckets.get(provider.name)
            if (bucket and not await bucket.acquire()) or not self.worker.fresh():
                lapsed = LeaseLapsed("not sent: this worker's lease could not be renewed in time")
                return [Outcome(j, error=lapsed) for j in jobs]
            return self._held(provider, jobs) or await self._call(provider, list(jobs))

    def _held(self, provider: Provider, jobs: Sequence[Job]) -> list[Outcome]:
        """Jobs that waited their turn while another request got the provider paused are not
        sent there: each gets the pause back (its attempt returned, the next provider takes it)."""
        if not self.chains[jobs[0].channel].paused(provider, self.now()):
            return []
        error = AccountError(
            f"not sent: {provider.name} was paused while this message waited / 服务商已暂停，未发送",
            provider.name,
            code="paused",
        )
        return [Outcome(j, error=error) for j in jobs]

    async def _call(self, provider: Provider, jobs: list[Job]) -> list[Outcome]:
        """One request for these jobs (send, or send_batch for several) and each job's outcome."""
        chain = self.chains[jobs[0].channel]
        try:
            if len(jobs) == 1:
                answers: list[SendResult | ProviderError] = [await provider.send(jobs[0].message)]
            else:
                answers = await provider.send_batch([j.message for j in jobs])
        except ProviderError as exc:
            answers = [exc] * len(jobs)
        except Exception as exc:  # a provider bug must not leave the row in `sending`
            error = PermanentError(
                f"{provider.name}: unexpected error {exc.__class__.__name__}: {exc}",
                provider.name,
                code="internal",
            )
            answers = [error] * len(jobs)
        outcomes, counted = [], set()
        for job, answer in zip(jobs, answers, strict=True):
            if not isinstance(answer, ProviderError):
                chain.succeeded(provider)
                outcomes.append(Outcome(job, result=answer))
                continue
            event = None
            if id(answer) not in counted:  # one failure per request, not per member of a batch
                counted.add(id(answer))
                if isinstance(answer, AccountError):
                    event = self._pause(chain, provider, answer, job.channel)
                elif isinstance(answer, TransientError):
                    event = self._failover(chain, provider, answer, job.channel)
            outcomes.append(Outcome(job, error=answer, failover=event))
        return outcomes

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
                "reason": mask_text(exc.message),
                "code": exc.code,
                "until": chain.resting_until[provider.name].isoformat(),
            },
        )

    def _pause(
        self, chain: ProviderChain, provider: Provider, exc: ProviderError, channel: Channel
    ) -> audit.AuditEvent | None:
        """An account-level refusal: pause the provider for everyone and say so (log, audit;
        /metrics reads the audit); None when it was paused already."""
        now = self.now()
        if not chain.pause(provider, now):
            return None
        nxt = chain.available(now)
        until = chain.paused_until[provider.name]
        log.warning(
            "provider %s paused until %s (%s): %s; %s",
            provider.name,
            until.isoformat(),
            exc.code,
            exc.message,
            f"{nxt.name} takes over" if nxt else f"no other {channel.value} provider: {channel.value} waits",
        )
        return audit.AuditEvent(
            self.actor,
            "provider.paused",
            f"channel:{channel.value}",
            {
                "provider": provider.name,
                "next": nxt.name if nxt else None,
                "reason": mask_text(exc.message),
                "code": exc.code,
                "until": until.isoformat(),
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
