"""Claim: the next batch of due deliveries, checked against the gates and marked `sending` in
its own committed transaction before any provider is called, so a crash never loses track of
a message that may have gone out.

Gates, in order: the run is approved and its item published today (RunSnapshot.gate: a closed
window or a restricted item skips the run's pending rows for good); SMS waits out quiet
hours; a row whose resident left the register, whose number opted out of SMS or that has no
stored message is skipped. A skipped row was never handed to a provider. The provider is
chosen (and recorded on the row) here, so a crash leaves the row with the provider to
reconcile against.

Claims are small: at most `[sending] batch_size` rows, and no more than about CLAIM_SECONDS of
sending at the providers' rates. Rows one worker holds are rows the other workers cannot take,
and rows a worker that dies leaves to be reconciled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ..app import App
from ..channels.failover import ProviderChain
from ..clock import as_utc
from ..runs.snapshot import GateState
from ..status import CHANNELS, Channel, RunStatus
from ..status import DeliveryStatus as S
from ..storage.records import records
from ..storage.schema import deliveries, runs
from .complete import complete_runs
from .jobs import Job, Snapshots, delivery_rows, stored_message
from .transitions import move, skip_pending
from .workers import Worker

CLAIM_SECONDS = 5.0


def claim_size(chains: dict[Channel, ProviderChain], batch_size: int) -> int:
    """`batch_size`, or fewer when every provider is rate-limited: about CLAIM_SECONDS of
    sending at the fastest of their rates."""
    rates = [p.rate_per_second for chain in chains.values() for p in chain.providers]
    if not rates or not all(rates):
        return batch_size
    return max(1, min(batch_size, math.ceil(max(r or 0.0 for r in rates) * CLAIM_SECONDS)))


@dataclass(frozen=True)
class Claimed:
    """A batch claimed: the jobs to send, and how many rows the gates skipped on the way."""

    jobs: tuple[Job, ...] = ()
    skipped: int = 0


@dataclass(frozen=True)
class _Batch:
    jobs: tuple[Job, ...] = ()
    skipped: int = 0
    skipped_whole: bool = False  # a full batch was skipped: the next one may hold sendable rows


class Claimer:
    def __init__(
        self,
        app: App,
        chains: dict[Channel, ProviderChain],
        worker: Worker,
        snapshots: Snapshots,
        *,
        now: Callable[[], datetime],
        actor: str,
        batch_size: int,
    ) -> None:
        self.app, self.chains, self.worker, self.snapshots = app, chains, worker, snapshots
        self.now, self.actor, self.batch_size = now, actor, claim_size(chains, batch_size)
        self.postgres = app.engine.dialect.name == "postgresql"

    def claim(self, run_id: int | None) -> Claimed:
        """The next batch to send; batches skipped whole (all opted out, ...) are passed over.
        Nothing is claimed while this worker's lease cannot be renewed (it must not send)."""
        skipped = 0
        while True:
            if not self.worker.fresh():
                self.worker.heartbeat()
                if not self.worker.fresh():
                    return Claimed((), skipped)
            now = self.now()
            batch = self._batch(run_id, now)
            skipped += batch.skipped
            if batch.jobs or not batch.skipped_whole:
                return Claimed(batch.jobs, skipped)

    def _batch(self, run_id: int | None, now: datetime) -> _Batch:
        local = now.astimezone(self.app.config.timezone)
        with self.app.engine.begin() as conn:
            sendable, skipped = self._open_runs(conn, run_id, local.date(), now)
            if not sendable:
                return _Batch((), skipped)
            waiting = [ch for ch, chain in self.chains.items() if chain.available(now) is None]
            quiet = self.app.config.quiet_hours.contains(local)
            rows = records(conn.execute(self._due(sendable, now, quiet, waiting)))
            if not rows:
                return _Batch((), skipped)
            ready = self._gate_rows(conn, rows, now)
            skipped += len(rows) - len(ready)
            ready = self._spaced(conn, ready, now)
            if not ready:
                complete_runs(conn, {r.run_id for r in rows}, now, self.actor)
                return _Batch((), skipped, len(rows) == self.batch_size)
            return _Batch(self._mark_sending(conn, ready, now), skipped)

    def _open_runs(
        self, conn: sa.Connection, run_id: int | None, today: date, now: datetime
    ) -> tuple[list[int], int]:
        """Approved runs whose gate is open today; the pending rows of runs whose gate closed
        are skipped (and the runs completed). Returns the open runs and the rows skipped."""
        q = sa.select(runs.c.id, runs.c.snapshot).where(runs.c.status == RunStatus.APPROVED)
        if run_id is not None:
            q = q.where(runs.c.id == run_id)
        sendable, closed, skipped = [], [], 0
        for row in conn.execute(q).all():
            gate = self.snapshots.of(row.id, row.snapshot).gate(today)
            if gate.state is GateState.OPEN:
                sendable.append(row.id)
            elif gate.state is GateState.CLOSED:
                closed.append(row.id)
                skipped += len(self._skip(conn, None, gate.reason, now, [deliveries.c.run_id == row.id]))
        complete_runs(conn, closed, now, self.actor)
        return sendable, skipped

    def _due(
        self, run_ids: list[int], now: datetime, quiet: bool, waiting: Sequence[Channel] = ()
    ) -> sa.Select[Any]:
        """Due pending rows; SMS waits out quiet hours, and a channel whose every provider is
        paused (an account-level refusal) waits until one is back."""
        d = deliveries
        q = (
            delivery_rows(self.app)
            .where(
                d.c.status == S.PENDING,
                d.c.run_id.in_(run_ids),
                sa.or_(d.c.next_attempt_at.is_(None), d.c.next_attempt_at <= now),
            )
            .order_by(d.c.id)
            .limit(self.batch_size)
        )
        held = {Channel.SMS} if quiet else set()
        held.update(waiting)
        if held:
            q = q.where(d.c.channel.not_in(sorted(held)))
        return q.with_for_update(of=d, skip_locked=True) if self.postgres else q

    def _gate_rows(self, conn: sa.Connection, rows: Sequence[Any], now: datetime) -> list[Any]:
        """The rows that pass the per-row gates; the others are skipped, grouped by reason."""
        ready: list[Any] = []
        skip: dict[str, list[int]] = {}
        for r in rows:
            why = _row_gate(r)
            if why is None:
                ready.append(r)
            else:
                skip.setdefault(why, []).append(r.id)
        for why, ids in skip.items():
            self._skip(conn, ids, why, now)
        return ready

    def _spaced(self, conn: sa.Connection, rows: list[Any], now: datetime) -> list[Any]:
        """The rows that may go now under their SMS provider's per-number spacing
        (`per_number_seconds`): one per number per batch, and none to a number the provider
        sent to less than that long ago. The others wait, still `pending`, until their number's
        turn (next_attempt_at), instead of being burnt into the provider's rate-limit errors."""
        chain = self.chains.get(Channel.SMS)
        provider = chain.current(now) if chain else None
        spacing = provider.options.per_number_seconds if provider else 0.0
        sms = [r for r in rows if r.channel == Channel.SMS]
        if not sms or spacing <= 0 or provider is None:
            return rows
        gap = timedelta(seconds=spacing)
        d = deliveries
        # Sent lately, or claimed and not answered yet: such a row may go out any moment from now
        # (by another worker, or by this one: a batch claimed ahead of the one sending), however
        # long ago it was claimed, so its number's next turn is a gap from now.
        sending = sa.func.max(sa.case((d.c.status == S.SENDING, 1), else_=0))
        recent = conn.execute(
            sa.select(d.c.recipient, sa.func.max(d.c.sent_at), sending)
            .where(
                d.c.recipient.in_(sorted({r.recipient for r in sms})),
                d.c.channel == Channel.SMS,
                d.c.provider == provider.name,
                sa.or_(d.c.sent_at > now - gap, d.c.status == S.SENDING),
            )
            .group_by(d.c.recipient)
        ).all()
        turn = {
            phone: (now if claimed or sent_at is None else as_utc(sent_at)) + gap
            for phone, sent_at, claimed in recent
        }
        ready, wait = [], {}
        for r in rows:
            if r.channel != Channel.SMS:
                ready.append(r)
            elif r.recipient in turn:
                wait[r.id] = turn[r.recipient]
                turn[r.recipient] += gap  # the next one after that, and so on
            else:
                ready.append(r)
                turn[r.recipient] = now + gap
        for due in sorted(set(wait.values())):
            ids = [i for i, t in wait.items() if t == due]
            conn.execute(
                d.update().where(d.c.id.in_(ids), d.c.status == S.PENDING).values(next_attempt_at=due)
            )
        return ready

    def _skip(
        self,
        conn: sa.Connection,
        ids: list[int] | None,
        why: str,
        now: datetime,
        where: Sequence[sa.ColumnElement[bool]] = (),
    ) -> list[int]:
        """pending -> skipped; the notice key is released since the resident was not reached."""
        return skip_pending(conn, where, ids=ids, actor=self.actor, now=now, reason=why, why=why)

    def _mark_sending(self, conn: sa.Connection, rows: list[Any], now: datetime) -> tuple[Job, ...]:
        """pending -> sending, one statement per provider chosen; each move audited with the
        attempt number and the digest of the text about to go out."""
        current = {channel: chain.current(now).name for channel, chain in self.chains.items()}
        # (a channel whose providers are all paused was left out of the claim: _due)
        jobs: list[Job] = []
        by_provider: dict[str, list[Job]] = {}
        for r in rows:
            channel = CHANNELS[r.channel]
            provider = current[channel]
            job = Job(
                r.id,
                r.run_id,
                channel,
                r.attempts + 1,
                provider,
                as_utc(r.created_at),
                r.sha256,
                stored_message(r, self.snapshots[r.run_id]),
            )
            jobs.append(job)
            by_provider.setdefault(provider, []).append(job)
        claimed: set[int] = set()
        d = deliveries
        for name, group in by_provider.items():
            claimed.update(
                move(
                    conn,
                    [j.id for j in group],
                    from_=S.PENDING,
                    to=S.SENDING,
                    actor=self.actor,
                    now=now,
                    values={"provider": name, "attempts": d.c.attempts + 1, "claimed_by": self.worker.id},
                    per_row={j.id: {"attempt": j.attempt, "sha256": j.sha256} for j in group},
                )
            )
        return tuple(j for j in jobs if j.id in claimed)


def _row_gate(r: Any) -> str | None:
    """Why this pending row must be skipped rather than sent, or None."""
    if r.r_resident_id is None:
        return "resident no longer in the register"
    if r.channel == Channel.SMS and r.opted_out:
        return "number opted out of SMS"
    if r.message_id is None:
        return "no stored message (run created before messages were stored): cancel and re-create the run"
    return None
