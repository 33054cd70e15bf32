"""The dispatcher's loop: claim -> send -> record, batch after batch, then (with `until_idle`)
wait for retries that come due and for open outcomes to be settled by reconciliation.

Under a rate limit the stages overlap, so that its pace has no gap between two batches: the next
batch is claimed (in a thread) once the one being sent needs no more than LEAD seconds of its rate
limits; it begins as soon as every request of that one has its slot, its last answers still
on their way; and a batch is recorded (in a thread) once its answers are in, while the next
one is sending. The event loop meanwhile keeps releasing rate slots. At most two batches are
sending and one claimed ahead; a claim and a record never run at the same time. A batch with a
request not paced by a rate limit (the outbox, SMTP without one) has no pace to keep: it is
claimed, sent and recorded one stage after the other, so no more rows are `sending` than one
batch.

Stopping is the caller's event: once it is set no new batch is claimed or begun; the batches in
flight are sent and recorded as usual, and a batch claimed ahead is given back (`pending` again,
no attempt used, audited as `withdrawn`), so nothing is left `sending`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from ..app import App
from ..errors import Withdrawn
from ..storage.db import db_error_text
from .claim import Claimed, Claimer
from .jobs import Job, Outcome
from .queue import next_retry
from .reconcile import Reconciler
from .record import Recorded, Recorder
from .send import Sender

Progress = Callable[[int], None]
MAX_WAIT = 60.0  # seconds: how long the loop sleeps at most before looking again
LEAD = 0.5
"""Seconds of rate-limited sending left in a batch when the next one is claimed: more than a
claim takes on a busy machine (tens of ms to a few hundred), little enough that the rows
claimed wait hardly longer than before."""
TAIL_POLL = 0.05
T = TypeVar("T")
log = logging.getLogger("notifier.delivery")


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

    def add(self, batch: Recorded) -> None:
        self.sent += batch.sent
        self.failed += batch.failed
        self.retried += batch.retried
        for channel, n in batch.by_channel.items():
            self.by_channel[channel] = self.by_channel.get(channel, 0) + n

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


@dataclass(frozen=True)
class Stages:
    claimer: Claimer
    sender: Sender
    recorder: Recorder
    reconciler: Reconciler


async def dispatch(
    app: App,
    stages: Stages,
    run_id: int | None,
    *,
    now: Callable[[], datetime],
    until_idle: bool,
    progress: Progress | None,
    stop: asyncio.Event,
) -> DispatchReport:
    """Send what is due (see the module docstring); the report's `remaining` and `unknown` are
    left for the caller to count."""
    report = DispatchReport()
    report.reconciled += await stages.reconciler.reconcile()
    while True:
        drained_from = now()
        await _drain(stages, run_id, report, now, progress, stop)
        if not until_idle or stop.is_set():
            return report
        wait = _wait(app, stages.reconciler, run_id, now(), drained_from)
        if wait is None:
            return report  # nothing left, or what is left waits on a gate
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
        if stages.reconciler.due_in is not None and not stop.is_set():
            report.reconciled += await stages.reconciler.reconcile()


async def _drain(
    stages: Stages,
    run_id: int | None,
    report: DispatchReport,
    now: Callable[[], datetime],
    progress: Progress | None,
    stop: asyncio.Event,
) -> None:
    """Claim, send and record batches until none is due (or `stop` is set)."""
    work = _InFlight(stages, report, now, progress)
    try:
        while jobs := await work.next_batch(run_id, stop):
            plan = stages.sender.plan(jobs)  # its requests count in the backlog from here on
            sending = asyncio.ensure_future(stages.sender.send_all(plan))
            work.sending.append((sending, len(jobs)))
            if not stages.sender.paced(plan):  # no pace to keep: one stage after the other
                await work.record()
                continue
            await work.record(but_last=True)  # the batch before: its last answers come in now
            await _until(sending, stages, LEAD)
            if not stop.is_set():
                work.claim_ahead(run_id)
            await _until(sending, stages, 0.0)  # every request has its slot: the next may begin
        await work.record()
    except BaseException as exc:
        try:
            await work.close(cancelled=isinstance(exc, asyncio.CancelledError))
        finally:
            work.db.shutdown(wait=False)  # finishing what close handed it, if close was cut short
        raise
    work.db.shutdown()  # idle: its thread ends at once (a process forks only while it runs one)


async def _until(sending: asyncio.Future[Any], stages: Stages, seconds: float) -> None:
    """Until the batch being sent needs no more than `seconds` of its providers' rate limits,
    or is done."""
    while not sending.done() and stages.sender.backlog() > seconds:
        await asyncio.wait([sending], timeout=TAIL_POLL)


class _InFlight:
    """What the overlapped loop has under way: the batches sending (at most two: the one whose
    last answers are coming in, the one begun meanwhile), the batch claimed ahead, and the
    database work, which runs in one thread of its own (`db`), so claims, records and
    give-backs never run at once and never queue behind providers' threads.

    A thread cannot be cancelled, so an exit by an error or a cancel goes through close, which
    hands the thread what must still be done before it awaits anything: a second cancel cannot
    stop it. A normal exit leaves nothing: the last claim held no jobs."""

    def __init__(
        self, stages: Stages, report: DispatchReport, now: Callable[[], datetime], progress: Progress | None
    ) -> None:
        self.stages, self.report, self.now, self.progress = stages, report, now, progress
        self.db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notifier-dispatch-db")
        self.sending: list[tuple[asyncio.Future[list[Outcome]], int]] = []
        self.ahead: asyncio.Future[Claimed] | None = None
        self.recording: asyncio.Future[Recorded] | None = None
        self._lock = threading.Lock()
        self._withdraw = False  # set by close: a claim ahead still under way gives itself back
        self._ahead_claimed: Claimed | None = None  # what the claim ahead returned (in its thread)

    def _submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """fn in the database thread, submitted now (not when a coroutine gets to run)."""
        return asyncio.get_running_loop().run_in_executor(self.db, fn, *args)

    def claim_ahead(self, run_id: int | None) -> None:
        self._ahead_claimed = None

        def claim() -> Claimed:
            claimed = self.stages.claimer.claim(run_id)
            with self._lock:
                withdraw = self._withdraw
                self._ahead_claimed = None if withdraw else claimed
            if withdraw and claimed.jobs:  # close() came meanwhile and left it to this thread
                self._record_given_back(claimed.jobs)
                return Claimed((), claimed.skipped)
            return claimed

        self.ahead = self._submit(claim)

    async def next_batch(self, run_id: int | None, stop: asyncio.Event) -> tuple[Job, ...]:
        """The batch claimed ahead, or one claimed now; none once `stop` is set (a batch claimed
        ahead is then given back) or when nothing is due."""
        if self.ahead is None:
            if stop.is_set():
                return ()
            self.claim_ahead(run_id)
        claimed = await self._claimed()
        if not claimed.jobs and self.sending and not stop.is_set():
            # claimed before the batches sending were recorded, which may make rows due (a
            # channel fallback, an attempt given back): look once more when they are
            await self.record()
            self.claim_ahead(run_id)
            claimed = await self._claimed()
        if claimed.jobs and stop.is_set():
            await asyncio.shield(self._submit(self._record_given_back, claimed.jobs))
            return ()
        return claimed.jobs

    async def _claimed(self) -> Claimed:
        assert self.ahead is not None
        claimed = await asyncio.shield(self.ahead)  # cancelled meanwhile: close() gives it back
        self.ahead = None
        self.report.skipped += claimed.skipped
        return claimed

    async def record(self, *, but_last: bool = False) -> None:
        """Wait for the answers of the batches sending (`but_last`: but the one begun last) and
        record them in the database thread: the loop goes on sending meanwhile."""
        while len(self.sending) > int(but_last):
            sending, size = self.sending[0]
            outcomes = await asyncio.shield(sending)
            del self.sending[0]
            at = self.now()  # the rows' updated_at: reconciliation times their settling from it
            self.recording = self._submit(self.stages.recorder.record, outcomes, at)
            recorded = await asyncio.shield(self.recording)
            self.recording = None
            self.stages.reconciler.watch(recorded.unknown, at)
            self.report.add(recorded)
            if self.progress:
                self.progress(size)

    async def close(self, *, cancelled: bool) -> None:
        """After an error or a cancel. A batch claimed ahead is given back. Batches whose
        answers are in are recorded; the others are finished and recorded after an error,
        abandoned after a cancel (a shutdown that could not wait; a cancel while they finish
        counts as one): their rows stay `sending` for reconciliation, as after a crash. What the
        database thread must do is handed to it before anything is awaited, and nothing handed
        to it is cancelled (asyncio.wait, not gather, which would cancel what it waits for)."""
        left: list[asyncio.Future[Any]] = [
            f for f in (self.recording, self._withdraw_ahead()) if f is not None
        ]
        interrupted = False
        if not cancelled and self.sending:
            try:
                await asyncio.wait([s for s, _ in self.sending])
            except asyncio.CancelledError:
                interrupted = True
        for sending, _ in self.sending:
            if sending.done() and not sending.cancelled() and sending.exception() is None:
                left.append(self._submit(self.stages.recorder.record, sending.result(), self.now()))
            else:
                sending.cancel()
        self.sending.clear()
        if left:
            await asyncio.wait(left)  # (a second cancel ends this wait, not the thread's work)
        for fut in left:
            if not fut.cancelled() and (exc := fut.exception()) is not None:
                why = db_error_text(exc) if isinstance(exc, sa.exc.DBAPIError) else repr(exc)
                log.warning("rows in flight could not be recorded (%s): reconciliation settles them", why)
        if interrupted:
            raise asyncio.CancelledError

    def _withdraw_ahead(self) -> asyncio.Future[Any] | None:
        """Give back the batch claimed ahead: handed to the database thread now if its claim is
        done, else left to the claim's own thread (it looks at `_withdraw` when it returns)."""
        if self.ahead is None:
            return None
        ahead, self.ahead = self.ahead, None
        with self._lock:
            self._withdraw, claimed = True, self._ahead_claimed
        if claimed is None:
            return ahead
        return self._submit(self._record_given_back, claimed.jobs) if claimed.jobs else None

    def _record_given_back(self, jobs: tuple[Job, ...]) -> None:
        """pending again, attempt not used, audited (Withdrawn): nothing was handed over."""
        error = Withdrawn("not sent: the worker stopped before this batch's turn")
        self.stages.recorder.record([Outcome(j, error=error) for j in jobs], self.now())


def _wait(
    app: App, reconciler: Reconciler, run_id: int | None, now: datetime, drained_from: datetime
) -> float | None:
    """Seconds to sleep before a retry comes due or an open outcome can be settled; None when
    neither is ahead. A retry due before the drain began and still not claimed waits on a gate
    (quiet hours, ...): not a reason to poll; one that came due since (a number's turn, while a
    slow drain went on) is looked at once more."""
    nxt = next_retry(app, run_id, after=drained_from)
    retry_in = max(0.0, (nxt - now).total_seconds()) if nxt else None
    waits = [w for w in (reconciler.due_in, retry_in) if w is not None]
    return min(MAX_WAIT, max(0.05, min(waits))) if waits else None
