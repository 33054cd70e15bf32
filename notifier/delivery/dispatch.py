"""The dispatcher: claim due deliveries -> send their stored text -> record the outcome -> audit.

Messages were rendered and stored when the run was created (messages.py): what is sent is
what was approved, and nothing here renders or reads the register's current data.

Claimed rows are marked `sending` in their own committed transaction before any provider
is called, so a crash can never lose track of a message that may have gone out. Gates are
checked at claim time: the run is approved, the item is published today, it is not quiet
hours (SMS), and the number has not opted out.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ..app import App
from ..audit import log as audit
from ..channels.base import OutboundMessage, Provider, SendResult
from ..channels.failover import ProviderChain
from ..channels.ratelimit import TokenBucket
from ..clock import as_utc, utcnow
from ..errors import PermanentError, ProviderError, TransientError
from ..status import Channel, RunStatus, can_transition
from ..status import DeliveryStatus as S
from ..storage.bulk import executemany
from ..storage.schema import deliveries, opt_outs, run_messages, runs
from .fallback import fall_back
from .workers import Worker

Progress = Callable[[int], None]


@dataclass
class DispatchReport:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    reconciled: int = 0  # outcomes settled with the provider (found there: sent; not found: sent again)
    unknown: int = 0  # still `unknown` when the command ended: reported, never resent blindly
    remaining: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "skipped": self.skipped,
            "retried": self.retried,
            "reconciled": self.reconciled,
            "unknown": self.unknown,
            "remaining": self.remaining,
            "by_channel": self.by_channel,
        }


@dataclass
class _RunInfo:
    """What the claim gates and letters need of a run's snapshot."""

    title: str
    publish_from: date | None
    publish_until: date | None
    restricted: bool


@dataclass
class _Job:
    row: Any
    channel: Channel
    provider: Provider | None = None
    message: OutboundMessage | None = None
    result: SendResult | None = None
    error: ProviderError | None = None


def complete_runs(conn: sa.Connection, run_ids: set[int], now: datetime, actor: str) -> None:
    """Approved runs with no open delivery left become `completed` (audited)."""
    d = deliveries
    for rid in run_ids:
        # `unknown` is open too: reconciliation may still find it was never sent and resend it.
        open_rows = conn.execute(
            sa.select(sa.func.count()).where(
                d.c.run_id == rid, d.c.status.in_([S.PENDING, S.SENDING, S.UNKNOWN])
            )
        ).scalar_one()
        if open_rows == 0:
            conn.execute(
                runs.update()
                .where(runs.c.id == rid, runs.c.status == RunStatus.APPROVED)
                .values(status=RunStatus.COMPLETED, completed_at=now)
            )
            audit.record(conn, actor, "run.completed", f"run:{rid}")


class Dispatcher:
    def __init__(
        self,
        app: App,
        providers: dict[Channel, ProviderChain],
        *,
        now: Callable[[], datetime] = utcnow,
        actor: str = "dispatcher",
        worker: Worker | None = None,
    ) -> None:
        self.app, self.providers, self.now, self.actor = app, providers, now, actor
        self.all_providers = {p.name: p for chain in providers.values() for p in chain.providers}
        self.failovers: list[audit.AuditEvent] = []
        s = app.config.sending
        self.batch_size = s.batch_size
        self.max_attempts = s.max_attempts
        self.retry_base = s.retry_base_seconds
        self.stale_seconds = s.stale_seconds
        self.settle_seconds = s.settle_seconds
        self.worker = worker or Worker(app.engine, timedelta(seconds=self.stale_seconds))
        # Reconciliation state of this process: when a row may be looked up (monotonic time) and
        # how often its lookup failed; rows given up on stay `unknown` until the next command.
        self._lookup_at: dict[int, float] = {}
        self._seen_change: dict[int, datetime] = {}  # the row's updated_at when _lookup_at was set
        self._lookup_failures: dict[int, int] = {}
        self._reconcile_in: float | None = None
        self.deadline = timedelta(seconds=s.retry_deadline_seconds)
        self.runs: dict[int, _RunInfo] = {}
        self.buckets = {
            p.name: TokenBucket(p.rate_per_second, float(p.settings.get("burst", 1)))
            for p in self.all_providers.values()
            if p.rate_per_second
        }
        self.limits = {p.name: asyncio.Semaphore(max(1, p.concurrency)) for p in self.all_providers.values()}
        self.postgres = app.engine.dialect.name == "postgresql"
        self.skipped = 0  # rows skipped at claim time (opted out, window closed, ...)
        self.reconciled = 0

    # -- run information from the snapshot ---------------------------------------------
    def _run(self, row: Any) -> _RunInfo:
        info = self.runs.get(row.id)
        if info is None:
            snap = row.snapshot
            start, until = (
                date.fromisoformat(v) if (v := snap["item"].get(k)) else None
                for k in ("publish_from", "publish_until")
            )
            info = self.runs[row.id] = _RunInfo(
                snap["item"].get("title", ""), start, until, snap.get("disclosure") == "restricted"
            )
        return info

    def _sendable_runs(
        self, conn: sa.Connection, run_id: int | None, today: date
    ) -> tuple[list[int], dict[int, str]]:
        """Approved runs whose item is published today; and those whose window has closed (with why)."""
        q = sa.select(runs).where(runs.c.status == RunStatus.APPROVED)
        if run_id is not None:
            q = q.where(runs.c.id == run_id)
        ok, closed = [], {}
        for row in conn.execute(q):
            info = self._run(row)
            if info.restricted:
                closed[row.id] = "item is restricted"
            elif info.publish_until and today > info.publish_until:
                closed[row.id] = f"publication window ended on {info.publish_until}"
            elif info.publish_from is None or today >= info.publish_from:
                ok.append(row.id)
        return ok, closed

    # -- claim -------------------------------------------------------------------------
    def _rows(self) -> sa.Select[Any]:
        """Deliveries with their stored message, whether the resident is still in the register
        and the opt-out flag."""
        d, t, m = deliveries, self.app.residents, run_messages
        return (
            sa.select(
                d.c.id,
                d.c.run_id,
                d.c.resident_id,
                d.c.channel,
                d.c.status,
                d.c.recipient,
                d.c.attempts,
                d.c.provider,
                d.c.claimed_by,
                d.c.created_at,
                d.c.updated_at,
                d.c.message_id,
                t.c.resident_id.label("r_resident_id"),
                m.c.recipient_name,
                m.c.township,
                m.c.village,
                m.c.subject,
                m.c.body,
                m.c.html,
                m.c.segments,
                m.c.sha256,
                sa.exists().where(opt_outs.c.phone == d.c.recipient).label("opted_out"),
            )
            .join(t, t.c.resident_id == d.c.resident_id, isouter=True)
            .join(m, m.c.id == d.c.message_id, isouter=True)
        )

    def _claim(self, run_id: int | None) -> list[_Job]:
        """The next batch to send; batches skipped whole (all opted out, ...) are passed over."""
        while True:
            jobs, skipped_whole_batch = self._claim_batch(run_id)
            if jobs or not skipped_whole_batch:
                return jobs

    def _claim_batch(self, run_id: int | None) -> tuple[list[_Job], bool]:
        now = self.now()
        local = now.astimezone(self.app.config.timezone)
        d = deliveries
        with self.app.engine.begin() as conn:
            ok, closed = self._sendable_runs(conn, run_id, local.date())
            for rid, why in closed.items():
                self._skip_pending(conn, rid, why, now)
            self._complete_runs(conn, set(closed), now)
            if not ok:
                return [], False
            q = (
                self._rows()
                .where(
                    d.c.status == S.PENDING,
                    d.c.run_id.in_(ok),
                    sa.or_(d.c.next_attempt_at.is_(None), d.c.next_attempt_at <= now),
                )
                .order_by(d.c.id)
                .limit(self.batch_size)
            )
            if self.app.config.quiet_hours.contains(local):
                q = q.where(d.c.channel != Channel.SMS)
            if self.postgres:
                q = q.with_for_update(of=d, skip_locked=True)
            rows = conn.execute(q).all()
            if not rows:
                return [], False
            jobs = []
            for r in rows:  # checked before `sending`: a skipped row was never handed to a provider
                why = (
                    "resident no longer in the register"
                    if r.r_resident_id is None
                    else "number opted out of SMS"
                    if r.channel == Channel.SMS and r.opted_out
                    else "no stored message (run created before messages were stored): cancel and re-create the run"
                    if r.message_id is None
                    else None
                )
                if why:
                    self._skip(conn, [r.id], r.run_id, why, now)
                    self.skipped += 1
                else:
                    jobs.append(_Job(r, Channel(r.channel)))
            if not jobs:
                self._complete_runs(conn, {r.run_id for r in rows}, now)
                return [], len(rows) == self.batch_size
            # The provider is chosen (and recorded) before sending, so a crash leaves the row
            # with the provider to reconcile against.
            by_provider: dict[str, list[int]] = {}
            for j in jobs:
                j.provider = self.providers[j.channel].current(now)
                by_provider.setdefault(j.provider.name, []).append(j.row.id)
            for name, ids in by_provider.items():
                conn.execute(
                    d.update()
                    .where(d.c.id.in_(ids))
                    .values(
                        status=S.SENDING,
                        provider=name,
                        attempts=d.c.attempts + 1,
                        claimed_by=self.worker.id,
                        updated_at=now,
                    )
                )
            audit.append(
                conn,
                [
                    audit.AuditEvent(
                        self.actor,
                        "delivery.status",
                        f"delivery:{j.row.id}",
                        {
                            "run": j.row.run_id,
                            "from": "pending",
                            "to": "sending",
                            "attempt": j.row.attempts + 1,
                            "sha256": j.row.sha256,
                        },
                    )
                    for j in jobs
                ],
                now=now,
            )
        return jobs, False

    def _skip_pending(self, conn: sa.Connection, run_id: int, why: str, now: datetime) -> None:
        d = deliveries
        ids = list(
            conn.execute(sa.select(d.c.id).where(d.c.run_id == run_id, d.c.status == S.PENDING)).scalars()
        )
        if ids:
            self._skip(conn, ids, run_id, why, now)
            self.skipped += len(ids)

    def _skip(self, conn: sa.Connection, ids: list[int], run_id: int, why: str, now: datetime) -> None:
        """pending -> skipped; the notice key is released since the resident was not reached."""
        d = deliveries
        conn.execute(
            d.update()
            .where(d.c.id.in_(ids), d.c.status == S.PENDING)
            .values(status=S.SKIPPED, reason=why, notice_key=None, updated_at=now)
        )
        audit.append(
            conn,
            [
                audit.AuditEvent(
                    self.actor,
                    "delivery.status",
                    f"delivery:{i}",
                    {"run": run_id, "from": "pending", "to": "skipped", "reason": why},
                )
                for i in ids
            ],
            now=now,
        )

    # -- send --------------------------------------------------------------------------
    def _prepare(self, job: _Job) -> OutboundMessage:
        """The stored message of a claimed (or reconciled) row, as the provider takes it."""
        r = job.row
        job.message = OutboundMessage(
            delivery_id=r.id,
            run_id=r.run_id,
            channel=job.channel,
            resident_id=r.resident_id,
            recipient=r.recipient,
            recipient_name=r.recipient_name or "",
            body=r.body,
            subject=r.subject,
            html=r.html,
            segments=r.segments,
            meta={
                "township": r.township or "",
                "village": r.village or "",
                "title": self.runs[r.run_id].title,
            },
        )
        return job.message

    async def _send_one(self, job: _Job) -> None:
        message = self._prepare(job)
        provider = job.provider
        assert provider is not None
        async with self.limits[provider.name]:
            bucket = self.buckets.get(provider.name)
            if bucket:
                await bucket.acquire()
            if not self.worker.fresh(self.now()):
                job.error = TransientError(
                    "not sent: this worker's lease could not be renewed in time", provider.name, code="lease"
                )
                return
            chain = self.providers[job.channel]
            try:
                job.result = await provider.send(message)
                chain.succeeded(provider)
            except ProviderError as exc:
                job.error = exc
                if exc.retryable and chain.failed(provider, self.now()):
                    nxt = chain.current(self.now())
                    self.failovers.append(
                        audit.AuditEvent(
                            self.actor,
                            "provider.failover",
                            f"channel:{job.channel.value}",
                            {
                                "provider": provider.name,
                                "next": nxt.name,
                                "reason": exc.message,
                                "code": exc.code,
                                "until": chain.resting_until[provider.name].isoformat(),
                            },
                        )
                    )
            except Exception as exc:  # a provider bug must not leave the row in `sending`
                job.error = PermanentError(
                    f"{provider.name}: unexpected error {exc.__class__.__name__}: {exc}",
                    provider.name,
                    code="internal",
                )

    # -- record outcomes ---------------------------------------------------------------
    def _record(self, jobs: list[_Job], report: DispatchReport) -> None:
        now = self.now()
        updates, events = [], []
        fallbacks: list[_Job] = []
        for j in jobs:
            r = j.row
            assert j.provider is not None
            provider = j.provider.name
            values: dict[str, Any] = {
                "b_id": r.id,
                "provider": provider,
                "provider_message_id": None,
                "segments": None,
                "error_code": None,
                "reason": None,
                "sent_at": None,
                "next_attempt_at": None,
            }
            payload: dict[str, Any] = {
                "run": r.run_id,
                "from": "sending",
                "provider": provider,
                "sha256": r.sha256,
            }
            if j.result is not None:
                status = j.result.status
                values.update(
                    provider_message_id=j.result.provider_message_id,
                    sent_at=now,
                    segments=j.message.segments if j.message else None,
                )
                payload["message_id"] = j.result.provider_message_id
                report.sent += 1
                report.by_channel[j.channel.value] = report.by_channel.get(j.channel.value, 0) + 1
            else:
                err = j.error
                assert err is not None
                values.update(error_code=err.code, reason=err.message)
                payload.update(code=err.code, reason=err.message, retryable=err.retryable)
                if err.ambiguous:  # maybe accepted: never resend blindly; looked up once it has settled
                    status = S.UNKNOWN
                    self._lookup_at[r.id], self._seen_change[r.id] = (
                        time.monotonic() + self.settle_seconds,
                        now,
                    )
                    self._reconcile_in = min(self._reconcile_in or self.settle_seconds, self.settle_seconds)
                elif (
                    err.retryable
                    and r.attempts + 1 < self.max_attempts
                    and now - as_utc(r.created_at) < self.deadline
                ):
                    status = S.PENDING
                    delay = self.retry_base * (2**r.attempts) * random.uniform(0.5, 1.5)
                    values["next_attempt_at"] = now + timedelta(seconds=delay)
                    payload["retry_at"] = values["next_attempt_at"].isoformat()
                    report.retried += 1
                else:
                    status = S.FAILED
                    report.failed += 1
                    fallbacks.append(j)
            assert can_transition(S.SENDING, status), status
            values["b_status"] = status
            updates.append(values)
            events.append(
                audit.AuditEvent(
                    self.actor, "delivery.status", f"delivery:{r.id}", payload | {"to": status.value}
                )
            )
        d = deliveries
        base = dict(
            status=sa.bindparam("b_status"),
            provider=sa.bindparam("provider"),
            provider_message_id=sa.bindparam("provider_message_id"),
            segments=sa.bindparam("segments"),
            error_code=sa.bindparam("error_code"),
            reason=sa.bindparam("reason"),
            sent_at=sa.bindparam("sent_at"),
            next_attempt_at=sa.bindparam("next_attempt_at"),
            updated_at=now,
        )
        with self.app.engine.begin() as conn:
            q = sa.select(d.c.id).where(
                d.c.id.in_([u["b_id"] for u in updates]),
                d.c.status == S.SENDING,
                d.c.claimed_by == self.worker.id,
            )
            still = set(conn.execute(q.with_for_update() if self.postgres else q).scalars())
            if len(still) < len(updates):
                updates, events, fallbacks = self._overtaken(conn, still, updates, events, fallbacks, now)
            stmt = d.update().where(
                d.c.id == sa.bindparam("b_id"), d.c.status == S.SENDING, d.c.claimed_by == self.worker.id
            )
            executemany(conn, stmt.values(**base), updates)
            audit.append(conn, events + self.failovers, now=now)
            self.failovers.clear()
            fall_back(conn, self.app, [j.row.id for j in fallbacks], now, self.actor)
            self._complete_runs(conn, {j.row.run_id for j in jobs}, now)

    def _overtaken(
        self,
        conn: sa.Connection,
        still: set[int],
        updates: list[dict[str, Any]],
        events: list[audit.AuditEvent],
        fallbacks: list[_Job],
        now: datetime,
    ) -> tuple[list[dict[str, Any]], list[audit.AuditEvent], list[_Job]]:
        """Rows a receipt moved on while the provider's answer was on its way (Twilio can call
        back before it answers): their status stays as the receipt set it, the answer's facts
        (SID, segments, time) are kept where still empty, and the audit log records the answer
        as what it is, not as a status change that did not happen."""
        d = deliveries
        late = [(u, e) for u, e in zip(updates, events, strict=False) if u["b_id"] not in still]
        for u, e in late:
            if u["provider_message_id"]:  # only into a row a receipt settled, never one claimed again
                conn.execute(
                    d.update()
                    .where(d.c.id == u["b_id"], d.c.status.not_in([S.PENDING, S.SENDING, S.UNKNOWN]))
                    .values(
                        provider_message_id=sa.func.coalesce(
                            d.c.provider_message_id, u["provider_message_id"]
                        ),
                        segments=sa.func.coalesce(d.c.segments, u["segments"]),
                        sent_at=sa.func.coalesce(d.c.sent_at, u["sent_at"]),
                        provider=u["provider"],
                    )
                )
        answers = [
            audit.AuditEvent(
                self.actor,
                "delivery.send_result",
                e.subject,
                {k: v for k, v in e.payload.items() if k not in ("from", "to")}
                | {"answer": e.payload["to"], "note": "the row had moved on (a receipt, or another worker)"},
            )
            for _, e in late
        ]
        kept = [(u, e) for u, e in zip(updates, events, strict=False) if u["b_id"] in still]
        return (
            [u for u, _ in kept],
            [e for _, e in kept] + answers,
            [j for j in fallbacks if j.row.id in still],
        )

    def _complete_runs(self, conn: sa.Connection, run_ids: set[int], now: datetime) -> None:
        complete_runs(conn, run_ids, now, self.actor)

    # -- recovery and the loop -----------------------------------------------------------
    async def reconcile(self) -> int:
        """Settle deliveries whose outcome is not known before anything is resent: rows left in
        `sending` by a worker that is gone (see workers.py) and rows ended `unknown`.

        A row is looked up only once it has settled (`settle_seconds` after its last change), so
        a request the provider was still processing is not mistaken for one it never took. A
        provider that can look messages up (by recipient, time and text) decides: found means
        sent, not found means never accepted, so it may go again. Idempotent providers (files
        named by delivery id) simply go again. Otherwise the row stays / ends `unknown` and is
        reported, never silently resent. Failed lookups are retried with backoff, up to
        `max_attempts` per command. Sets `_reconcile_in`: seconds until a row waiting to settle
        or for its next lookup can be decided (None if none)."""
        now, clock = self.now(), time.monotonic()
        d = deliveries
        with self.app.reader.connect() as conn:
            rows = conn.execute(self._rows().where(d.c.status.in_([S.SENDING, S.UNKNOWN]))).all()
            dead = self.worker.dead_claimers(
                conn, {r.claimed_by for r in rows if r.status == S.SENDING and r.claimed_by}, now
            )
            stale = now - timedelta(seconds=self.stale_seconds)
            rows = [
                r
                for r in rows
                if r.status == S.UNKNOWN
                or (r.claimed_by in dead if r.claimed_by else as_utc(r.updated_at) < stale)
            ]
            for run in conn.execute(sa.select(runs).where(runs.c.id.in_({r.run_id for r in rows}))):
                self._run(run)
        waits: list[float] = []
        decided: list[tuple[Any, S, str, SendResult | None]] = []
        lookups: list[tuple[Any, Provider, _Job]] = []
        for r in rows:
            chain = self.providers.get(Channel(r.channel))
            if chain is None or self._lookup_failures.get(r.id, 0) >= self.max_attempts:
                continue
            provider = chain.named(r.provider) or chain.current(now)
            if not (provider.idempotent or provider.can_lookup and r.message_id is not None):
                if r.status == S.SENDING:
                    decided.append(
                        (r, S.UNKNOWN, "interrupted while sending; outcome unknown, not resent", None)
                    )
                continue
            # A dead worker's row was stamped when it was claimed, maybe long before its request
            # went out: it settles `settle_seconds` after this process finds it (again, if another
            # process changed it since), timed on this process's monotonic clock.
            if self._seen_change.get(r.id) != as_utc(r.updated_at) or r.id not in self._lookup_at:
                self._lookup_at[r.id], self._seen_change[r.id] = (
                    clock + self.settle_seconds,
                    as_utc(r.updated_at),
                )
            settled_in = self._lookup_at[r.id] - clock
            if settled_in > 0:
                waits.append(settled_in)
            elif provider.idempotent:
                decided.append((r, S.PENDING, "interrupted; the provider is idempotent, sent again", None))
            else:
                lookups.append((r, provider, _Job(r, Channel(r.channel))))
        for (r, provider, job), found in zip(
            lookups, await asyncio.gather(*(self._lookup(p, j) for _, p, j in lookups)), strict=False
        ):
            if isinstance(found, ProviderError):
                failures = self._lookup_failures[r.id] = self._lookup_failures.get(r.id, 0) + 1
                if failures < self.max_attempts:
                    delay = self.retry_base * (2 ** (failures - 1)) * random.uniform(0.5, 1.5)
                    self._lookup_at[r.id] = clock + delay
                    if r.status == S.SENDING:  # about to be marked `unknown` at `now`: not another's change
                        self._seen_change[r.id] = now
                    waits.append(delay)
                if r.status == S.SENDING:  # the worker is gone: say so while the outcome is open
                    decided.append(
                        (
                            r,
                            S.UNKNOWN,
                            f"interrupted while sending; cannot look it up yet: {found.message}",
                            None,
                        )
                    )
            elif found:
                decided.append((r, S.SENT, "reconciled: the provider has the message", found))
            else:
                decided.append((r, S.PENDING, "reconciled: the provider never took it; sent again", None))
        self._reconcile_in = min(waits, default=None)
        if decided:
            self._settle(decided, now)
        return len(decided)

    async def _lookup(self, provider: Provider, job: _Job) -> SendResult | ProviderError | None:
        """The provider's record of the stored message (never a re-render)."""
        try:
            async with self.limits[provider.name]:
                return await provider.lookup(self._prepare(job), as_utc(job.row.created_at))
        except ProviderError as exc:
            return exc

    def _settle(self, decided: list[tuple[Any, S, str, SendResult | None]], now: datetime) -> None:
        """Apply what reconciliation decided, to rows still as they were read: another worker
        reconciling at the same time may have settled (and even resent) one already."""
        d = deliveries
        with self.app.engine.begin() as conn:
            done = []
            for r, new, why, found in decided:
                assert can_transition(S(r.status), new), (r.status, new)
                unchanged = [
                    d.c.id == r.id,
                    d.c.status == r.status,
                    d.c.attempts == r.attempts,
                    d.c.claimed_by.is_(None) if r.claimed_by is None else d.c.claimed_by == r.claimed_by,
                ]
                if conn.execute(
                    d.update()
                    .where(*unchanged)
                    .values(
                        status=new,
                        reason=why,
                        updated_at=now,
                        **(
                            {"provider_message_id": found.provider_message_id, "sent_at": now}
                            if found
                            else {}
                        ),
                    )
                ).rowcount:
                    done.append((r, new, why, found))
            audit.append(
                conn,
                [
                    audit.AuditEvent(
                        self.actor,
                        "delivery.status",
                        f"delivery:{r.id}",
                        {
                            "run": r.run_id,
                            "from": r.status,
                            "to": new.value,
                            "reason": why,
                            **({"message_id": found.provider_message_id} if found else {}),
                        },
                    )
                    for r, new, why, found in done
                ],
                now=now,
            )
            self._complete_runs(conn, {r.run_id for r, _, _, _ in done}, now)
        self.reconciled += sum(1 for _, new, _, _ in done if new is not S.UNKNOWN)

    async def _keep_alive(self) -> None:
        """Renew the worker's lease while it runs, batches in flight included: a batch held back
        by a rate limit can take minutes, and a lapsed lease would let another worker settle (and
        resend) rows this one is still sending."""
        delay = max(1.0, self.worker.ttl.total_seconds() / 4)
        while True:
            await asyncio.sleep(delay)
            try:
                await asyncio.to_thread(self.worker.heartbeat, self.now())
                delay = max(1.0, self.worker.ttl.total_seconds() / 4)
            except (
                sa.exc.OperationalError
            ):  # database busy: try again soon; sends pause if the lease runs short
                delay = 1.0

    def count(self, statuses: list[S], run_id: int | None, *, approved_runs: bool = True) -> int:
        """Deliveries in these statuses (of one run, or all; of approved runs only, or any)."""
        d = deliveries
        q = (
            sa.select(sa.func.count())
            .select_from(d.join(runs, runs.c.id == d.c.run_id))
            .where(d.c.status.in_(statuses))
        )
        if approved_runs:
            q = q.where(runs.c.status == RunStatus.APPROVED)
        if run_id is not None:
            q = q.where(d.c.run_id == run_id)
        with self.app.reader.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def _next_retry(self, run_id: int | None) -> datetime | None:
        d = deliveries
        q = sa.select(sa.func.min(d.c.next_attempt_at)).where(
            d.c.status == S.PENDING, d.c.next_attempt_at.is_not(None)
        )
        if run_id is not None:
            q = q.where(d.c.run_id == run_id)
        with self.app.reader.connect() as conn:
            value = conn.execute(q).scalar_one()
        return as_utc(value) if value else None

    async def run(
        self, run_id: int | None = None, *, until_idle: bool = False, progress: Progress | None = None
    ) -> DispatchReport:
        """Send what is due. With `until_idle`, also wait for retries that come due and for
        open outcomes to be settled (see reconcile), and stop only when neither is left, or
        what is left waits on a gate (quiet hours, an unapproved run)."""
        report = DispatchReport()
        self.skipped = self.reconciled = 0
        for p in self.all_providers.values():
            await p.open()
        self.worker.heartbeat(self.now())
        alive = asyncio.create_task(self._keep_alive())
        try:
            await self.reconcile()
            while True:
                jobs = self._claim(run_id)
                if jobs:
                    await asyncio.gather(*(self._send_one(j) for j in jobs))
                    self._record(jobs, report)
                    if progress:
                        progress(len(jobs))
                    continue
                if not until_idle:
                    break
                nxt = self._next_retry(run_id)
                retry_in = (nxt - self.now()).total_seconds() if nxt else None
                # A retry already due but not claimed waits on a gate (quiet hours, ...): not a reason to poll.
                waits = [
                    w
                    for w in (self._reconcile_in, retry_in if retry_in and retry_in > 0 else None)
                    if w is not None
                ]
                if not waits:
                    break  # nothing left, or what is left waits on a gate
                await asyncio.sleep(min(60.0, max(0.05, min(waits))))
                if self._reconcile_in is not None:
                    await self.reconcile()
        finally:
            alive.cancel()
            await asyncio.gather(alive, return_exceptions=True)
            self.worker.stop()
            for p in self.all_providers.values():
                await p.close()
        report.skipped, report.reconciled = self.skipped, self.reconciled
        report.remaining = self.count([S.PENDING, S.SENDING], run_id)
        report.unknown = self.count([S.UNKNOWN], run_id, approved_runs=False)
        return report
