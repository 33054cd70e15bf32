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
from dataclasses import dataclass, field
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


@dataclass
class Plan:
    """A batch's jobs as requests (Sender.plan): single jobs and groups sent as one request, and
    per rate-limited provider how many of its requests have not asked for their slot yet."""

    jobs: list[Job]
    singles: list[Job]
    batches: list[list[Job]]
    unslotted: dict[str, int] = field(default_factory=dict)


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

    def backlog(self) -> float:
        """Seconds of the providers' pace the requests announced (plan) still need: those not
        given a slot yet, and the slots handed out ahead of now."""
        return max((b.backlog() for b in self.buckets.values()), default=0.0)

    async def open(self) -> None:
        for p in self.providers.values():
            await p.open()

    async def close(self) -> None:
        for p in self.providers.values():
            await p.close()

    async def send(self, job: Job, plan: Plan | None = None) -> Outcome:
        provider = self.providers[job.provider]
        async with self.limits[provider.name]:
            if not await self._slot(provider, plan) or not self.worker.fresh():
                return Outcome(
                    job, error=LeaseLapsed("not sent: this worker's lease could not be renewed in time")
                )
            held = self._held(provider, [job])
            return held[0] if held else (await self._call(provider, [job]))[0]

    def plan(self, jobs: Sequence[Job]) -> Plan:
        """The requests these jobs make: one per job, except that jobs for a provider that sends
        batches (max_batch > 1) with the same registered template and signature (and whatever
        else the provider's batch_key says they must share) go together, up to max_batch per
        request. Announced to the rate limits at once (before anything is sent), so `backlog`
        counts them from now on."""
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
        plan = Plan(list(jobs), singles, batches)
        for name in [j.provider for j in singles] + [g[0].provider for g in batches]:
            if name in self.buckets:
                plan.unslotted[name] = plan.unslotted.get(name, 0) + 1
        for name, n in plan.unslotted.items():
            self.buckets[name].expect(n)
        return plan

    def paced(self, plan: Plan) -> bool:
        """Whether every request of the plan waits on a rate limit (the pace the dispatcher's
        overlap keeps: delivery/loop.py)."""
        return all(j.provider in self.buckets for j in plan.jobs)

    async def send_all(self, jobs: Sequence[Job] | Plan) -> list[Outcome]:
        """Every job (see `plan`), in order; each job gets its own outcome."""
        plan = jobs if isinstance(jobs, Plan) else self.plan(jobs)
        in_turn: dict[str, list[Job]] = {}  # providers with one request at a time
        together: list[Job] = []
        for j in plan.singles:
            if self.providers[j.provider].concurrency == 1:
                in_turn.setdefault(j.provider, []).append(j)
            else:
                together.append(j)
        try:
            one, turns, many = await asyncio.gather(
                asyncio.gather(*(self.send(j, plan) for j in together)),
                asyncio.gather(*(self._in_turn(group, plan) for group in in_turn.values())),
                asyncio.gather(*(self.send_batch(group, plan) for group in plan.batches)),
            )
        finally:  # requests that never asked for their slot (cancelled) are no longer expected
            for name, n in plan.unslotted.items():
                if n:
                    self.buckets[name].expect(-n)
            plan.unslotted.clear()
        by_id = {o.job.id: o for o in [*one, *(o for outcomes in (*turns, *many) for o in outcomes)]}
        return [by_id[j.id] for j in plan.jobs]

    async def _in_turn(self, jobs: list[Job], plan: Plan) -> list[Outcome]:
        """One provider's jobs one after the other: with one request at a time they would queue
        on its semaphore in this order anyway, and a task per job costs more than the outbox's
        file (~15 µs of ~120 µs per message, bench/pipeline.py)."""
        return [await self.send(j, plan) for j in jobs]

    async def send_batch(self, jobs: Sequence[Job], plan: Plan | None = None) -> list[Outcome]:
        """Jobs for one provider as one request (its rate limit counts requests)."""
        if len(jobs) == 1:
            return [await self.send(jobs[0], plan)]
        provider = self.providers[jobs[0].provider]
        async with self.limits[provider.name]:
            if not await self._slot(provider, plan) or not self.worker.fresh():
                lapsed = LeaseLapsed("not sent: this worker's lease could not be renewed in time")
                return [Outcome(j, error=lapsed) for j in jobs]
            return self._held(provider, jobs) or await self._call(provider, list(jobs))

    async def _slot(self, provider: Provider, plan: Plan | None) -> bool:
        """This request's slot of the provider's rate limit (True at once without one)."""
        bucket = self.buckets.get(provider.name)
        if bucket is None:
            return True
        if plan is not None and plan.unslotted.get(provider.name):
            plan.unslotted[provider.name] -= 1  # the bucket counts it from here on
        else:
            bucket.expect(1)  # (a request outside a plan: a lookup's resend, a test)
        return await bucket.acquire()

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
