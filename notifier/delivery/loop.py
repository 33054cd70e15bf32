"""The dispatcher's loop: claim -> send -> record, batch after batch, then (with `until_idle`)
wait for retries that come due and for open outcomes to be settled by reconciliation.

Stopping is the caller's event: once it is set no new batch is claimed; the batch in flight is
sent and recorded as usual, so nothing is left `sending`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..app import App
from .claim import Claimer
from .queue import next_retry
from .reconcile import Reconciler
from .record import Recorded, Recorder
from .send import Sender

Progress = Callable[[int], None]
MAX_WAIT = 60.0  # seconds: how long the loop sleeps at most before looking again


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
        await _drain(stages, run_id, report, now, progress, stop)
        if not until_idle or stop.is_set():
            return report
        wait = _wait(app, stages.reconciler, run_id, now())
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
    while not stop.is_set():
        claimed = stages.claimer.claim(run_id)
        report.skipped += claimed.skipped
        if not claimed.jobs:
            return
        outcomes = await stages.sender.send_all(claimed.jobs)
        at = now()  # the rows' updated_at: reconciliation times their settling from it
        recorded = stages.recorder.record(outcomes, at)
        stages.reconciler.watch(recorded.unknown, at)
        report.add(recorded)
        if progress:
            progress(len(claimed.jobs))


def _wait(app: App, reconciler: Reconciler, run_id: int | None, now: datetime) -> float | None:
    """Seconds to sleep before a retry comes due or an open outcome can be settled; None when
    neither is ahead. A retry already due but not claimed waits on a gate (quiet hours, ...):
    not a reason to poll."""
    nxt = next_retry(app, run_id)
    retry_in = (nxt - now).total_seconds() if nxt else None
    waits = [w for w in (reconciler.due_in, retry_in if retry_in and retry_in > 0 else None) if w is not None]
    return min(MAX_WAIT, max(0.05, min(waits))) if waits else None
