"""Reconciliation: settle deliveries whose outcome is not known before anything is resent:
rows left `sending` by a worker that is gone (see workers.py) and rows that ended `unknown`.

A row is looked up only once it has settled (`settle_seconds` after its last change, timed on
this process's monotonic clock), so a request the provider was still processing is not taken
for one it never got. A provider that can look messages up (by recipient, time and text)
decides: found means sent, not found means never accepted, so it may go again. Idempotent
providers (files named by delivery id) simply go again. Otherwise the row stays / ends
`unknown` and is reported, never silently resent. Failed lookups are retried with backoff, up
to `max_attempts` per process; rows given up on stay `unknown` until the next command.

The timers are this module's own state (one Reconciler per dispatcher): when each row may be
looked up, the change of the row that timer was set for, and how often its lookup failed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..app import App
from ..channels.base import Provider, SendResult
from ..channels.failover import ProviderChain
from ..clock import as_utc
from ..config import SendingSettings
from ..errors import ProviderError
from ..status import Channel
from ..status import DeliveryStatus as S
from ..storage.records import records
from ..storage.schema import deliveries
from .complete import complete_runs
from .decide import Uniform, backoff
from .jobs import Snapshots, delivery_rows, stored_message
from .send import Sender
from .transitions import Move, move_each
from .workers import Worker


@dataclass(frozen=True)
class Settle:
    """What reconciliation decided for one open row (as it was read)."""

    row: Any
    to: S
    why: str
    found: SendResult | None = None

    def as_move(self, now: datetime) -> Move:
        """The move, applied only if the row is still as it was read: another worker reconciling
        at the same time may have settled (and even resent) it already."""
        r, found = self.row, self.found
        return Move(
            r.id,
            self.to,
            values={"provider_message_id": found.provider_message_id, "sent_at": now} if found else {},
            payload={"message_id": found.provider_message_id} if found else {},
            reason=self.why,
            expect={"status": r.status, "attempts": r.attempts, "claimed_by": r.claimed_by},
        )


Step = Settle | Provider | float | None
"""A row's next step: settle it, look it up at this provider, wait this many seconds, or nothing."""


class Reconciler:
    def __init__(
        self,
        app: App,
        chains: dict[Channel, ProviderChain],
        sender: Sender,
        worker: Worker,
        snapshots: Snapshots,
        settings: SendingSettings,
        *,
        now: Callable[[], datetime],
        actor: str,
        clock: Callable[[], float] = time.monotonic,
        rand: Uniform = random.uniform,
    ) -> None:
        self.app, self.chains, self.sender, self.worker = app, chains, sender, worker
        self.snapshots, self.settings, self.now, self.actor = snapshots, settings, now, actor
        self.clock, self.rand = clock, rand
        self._lookup_at: dict[int, float] = {}  # on `clock`
        self._seen_change: dict[int, datetime] = {}  # the row's updated_at when _lookup_at was set
        self._lookup_failures: dict[int, int] = {}
        self.due_in: float | None = None
        """Seconds until a row waiting to settle or for its next lookup can be decided (None: none)."""

    def watch(self, ids: Iterable[int], now: datetime) -> None:
        """Deliveries just recorded `unknown` at `now` (their answer was lost): look them up
        once they have settled."""
        settle = self.settings.settle_seconds
        at = self.clock() + settle
        watched = False
        for i in ids:
            self._lookup_at[i], self._seen_change[i] = at, now
            watched = True
        if watched:
            self.due_in = min(self.due_in or settle, settle)

    async def reconcile(self) -> int:
        """One pass over the open rows; returns how many were settled as sent or to send again."""
        now, clock = self.now(), self.clock()
        waits: list[float] = []
        decided: list[Settle] = []
        lookups: list[tuple[Any, Provider]] = []
        for r in self._open_rows(now):
            step = self._triage(r, now, clock)
            if isinstance(step, Settle):
                decided.append(step)
            elif isinstance(step, float):
                waits.append(step)
            elif step is not None:
                lookups.append((r, step))
        answers = await asyncio.gather(
            *(
                self.sender.lookup(p, stored_message(r, self.snapshots[r.run_id]), as_utc(r.created_at))
                for r, p in lookups
            )
        )
        for (r, _), found in zip(lookups, answers, strict=True):
            settle, wait = self._after_lookup(r, found, now, clock)
            decided += [settle] if settle else []
            waits += [wait] if wait is not None else []
        self.due_in = min(waits, default=None)
        return self._settle(decided, now) if decided else 0

    def _open_rows(self, now: datetime) -> list[Any]:
        """`unknown` rows, and `sending` rows whose claimer is gone (or, unclaimed, gone stale)."""
        d = deliveries
        with self.app.reader.connect() as conn:
            open_rows = delivery_rows(self.app).where(d.c.status.in_([S.SENDING, S.UNKNOWN]))
            rows = records(conn.execute(open_rows))
            claimers = {r.claimed_by for r in rows if r.status == S.SENDING and r.claimed_by}
            dead = self.worker.dead_claimers(conn, claimers)
            stale = now - timedelta(seconds=self.settings.stale_seconds)
            rows = [
                r
                for r in rows
                if r.status == S.UNKNOWN
                or (r.claimed_by in dead if r.claimed_by else as_utc(r.updated_at) < stale)
            ]
            self.snapshots.load(conn, {r.run_id for r in rows})
        return rows

    def _triage(self, r: Any, now: datetime, clock: float) -> Step:
        chain = self.chains.get(Channel(r.channel))
        if chain is None or self._lookup_failures.get(r.id, 0) >= self.settings.max_attempts:
            return None
        provider = chain.named(r.provider) or chain.current(now)
        if not (provider.idempotent or provider.can_lookup and r.message_id is not None):
            if r.status == S.SENDING:
                return Settle(r, S.UNKNOWN, "interrupted while sending; outcome unknown, not resent")
            return None
        # A dead worker's row was stamped when it was claimed, maybe long before its request
        # went out: it settles `settle_seconds` after this process finds it (again, if another
        # process changed it since).
        changed = as_utc(r.updated_at)
        if self._seen_change.get(r.id) != changed or r.id not in self._lookup_at:
            self._lookup_at[r.id], self._seen_change[r.id] = clock + self.settings.settle_seconds, changed
        settled_in = self._lookup_at[r.id] - clock
        if settled_in > 0:
            return settled_in
        if provider.idempotent:
            return Settle(r, S.PENDING, "interrupted; the provider is idempotent, sent again")
        return provider

    def _after_lookup(
        self, r: Any, found: SendResult | ProviderError | None, now: datetime, clock: float
    ) -> tuple[Settle | None, float | None]:
        """What a lookup's answer settles, and when to ask again after a failed one."""
        if not isinstance(found, ProviderError):
            if found:
                return Settle(r, S.SENT, "reconciled: the provider has the message", found), None
            return Settle(r, S.PENDING, "reconciled: the provider never took it; sent again"), None
        failures = self._lookup_failures[r.id] = self._lookup_failures.get(r.id, 0) + 1
        wait = None
        if failures < self.settings.max_attempts:
            wait = backoff(self.settings.retry_base_seconds, failures, self.rand)
            self._lookup_at[r.id] = clock + wait
            if r.status == S.SENDING:  # about to be marked `unknown` at `now`: not another's change
                self._seen_change[r.id] = now
        if r.status == S.SENDING:  # the worker is gone: say so while the outcome is open
            return Settle(
                r, S.UNKNOWN, f"interrupted while sending; cannot look it up yet: {found.message}"
            ), wait
        return None, wait

    def _settle(self, decided: list[Settle], now: datetime) -> int:
        """Apply the decisions to rows still as they were read (per source status, since a
        `sending` row may end `unknown` and an `unknown` one may not)."""
        run_of = {s.row.id: s.row.run_id for s in decided}
        done: list[Move] = []
        with self.app.engine.begin() as conn:
            for source in (S.SENDING, S.UNKNOWN):
                moves = [s.as_move(now) for s in decided if s.row.status == source]
                done += move_each(conn, moves, from_=source, actor=self.actor, now=now)[0]
            complete_runs(conn, {run_of[m.id] for m in done}, now, self.actor)
        return sum(1 for m in done if m.to is not S.UNKNOWN)
