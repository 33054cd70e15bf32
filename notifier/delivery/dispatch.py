"""The dispatcher: claim due deliveries -> send their stored text -> record the outcome -> audit.

Messages were rendered and stored when the run was created (messages.py): what is sent is what
was approved, and nothing here renders or reads the register's current data. The stages are
modules of their own, handing frozen values to each other:

  claim.py      gates, then pending -> sending in its own transaction       -> Claimed(jobs)
  send.py       each job to its provider, within rate and concurrency limits -> Outcome
  decide.py     what a failed send leads to (retry, unknown, failed): a pure function
  record.py     outcomes -> statuses, audit, channel fallback (fallback.py), completion (complete.py)
  reconcile.py  open outcomes (a crashed worker's `sending`, `unknown`) settled with the provider
  loop.py       the loop over those stages, until idle or stopped

This class wires them for one process: one worker lease, one set of providers and limits.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from ..app import App
from ..channels.failover import ProviderChain
from ..clock import utcnow
from ..status import Channel
from ..status import DeliveryStatus as S
from .claim import Claimer
from .decide import Uniform
from .jobs import Snapshots
from .loop import DispatchReport, Progress, Stages, dispatch
from .queue import count
from .reconcile import Reconciler
from .record import Recorder
from .send import Sender
from .workers import Worker, keep_alive

__all__ = ["DispatchReport", "Dispatcher", "Progress"]


class Dispatcher:
    def __init__(
        self,
        app: App,
        providers: dict[Channel, ProviderChain],
        *,
        now: Callable[[], datetime] = utcnow,
        actor: str = "dispatcher",
        worker: Worker | None = None,
        rand: Uniform = random.uniform,
    ) -> None:
        self.app, self.now, self.actor = app, now, actor
        s = app.config.sending
        self.worker = worker or Worker(app.engine, timedelta(seconds=s.stale_seconds))
        snapshots = Snapshots()
        sender = Sender(providers, self.worker, now=now, actor=actor)
        self.stages = Stages(
            Claimer(app, providers, self.worker, snapshots, now=now, actor=actor, batch_size=s.batch_size),
            sender,
            Recorder(app, self.worker, s, actor=actor, rand=rand),
            Reconciler(app, providers, sender, self.worker, snapshots, s, now=now, actor=actor, rand=rand),
        )

    async def run(
        self,
        run_id: int | None = None,
        *,
        until_idle: bool = False,
        progress: Progress | None = None,
        stop: asyncio.Event | None = None,
    ) -> DispatchReport:
        """Send what is due. With `until_idle`, also wait for retries that come due and for
        open outcomes to be settled (see reconcile.py), and stop only when neither is left, or
        what is left waits on a gate (quiet hours, an unapproved run). Once `stop` is set no
        new batch is claimed."""
        sender = self.stages.sender
        await sender.open()
        self.worker.heartbeat()
        alive = asyncio.create_task(keep_alive(self.worker))
        try:
            report = await dispatch(
                self.app,
                self.stages,
                run_id,
                now=self.now,
                until_idle=until_idle,
                progress=progress,
                stop=stop or asyncio.Event(),
            )
        finally:
            alive.cancel()
            await asyncio.gather(alive, return_exceptions=True)
            self.worker.stop()
            await sender.close()
        report.remaining = self.count([S.PENDING, S.SENDING], run_id)
        report.unknown = self.count([S.UNKNOWN], run_id, approved_runs=False)
        return report

    def count(self, statuses: list[S], run_id: int | None, *, approved_runs: bool = True) -> int:
        """Deliveries in these statuses (of one run, or all; of approved runs only, or any)."""
        return count(self.app, statuses, run_id, approved_runs=approved_runs)
