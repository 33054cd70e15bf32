"""The scheduler's place in `serve`: hold the `scheduler` lease, run APScheduler while holding
it, follow rule edits (SIGHUP or a changed file), and let go cleanly on stop.

A second `serve` on the same database waits as standby: it keeps trying the lease and takes over
once the holder stops renewing (dies). Firings are unique per (rule, scheduled time), so even an
overlap at hand-over cannot create a second run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from datetime import timedelta

from ..app import App
from ..health import Backoff, Health, report_failure
from ..rules.load import rule_files
from . import lease
from .scheduler import NoticeScheduler

log = logging.getLogger("notifier.scheduler")
LEASE = "scheduler"


class CheckpointLoop:
    """`serve` writes an audit checkpoint every `[audit] checkpoint_interval_seconds` (0: never),
    so a rewrite of the log can be dated to within one interval."""

    def __init__(self, app: App, health: Health | None = None) -> None:
        self.app = app
        self.health = health or Health()
        self.interval = app.config.audit.checkpoint_interval_seconds
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        from ..audit.checkpoints import take_checkpoint

        while self.interval > 0 and not self.stopping.is_set():
            try:
                await asyncio.wait_for(self.stopping.wait(), self.interval)
                return
            except asyncio.TimeoutError:
                pass
            try:
                cp = await asyncio.to_thread(take_checkpoint, self.app)
                log.info("audit checkpoint at event %s", cp.get("seq"))
                self.health.recovered("checkpoints")
            except (
                Exception
            ) as exc:  # a refused checkpoint (broken log, locked database) must not stop the service
                report_failure(self.health, "checkpoints", exc, self.interval, log)


class RetentionLoop:
    """`serve` applies `[retention]` once a day (`daily = true`), on the process holding the
    scheduler lease only, so two services on one database never purge at once. The first
    apply comes a minute after the lease is taken; a failed one is reported and tried again
    at the next check, without ending the service."""

    def __init__(
        self,
        app: App,
        scheduling: SchedulerLoop,
        health: Health | None = None,
        *,
        period: float = 86400.0,
        check: float = 60.0,
    ) -> None:
        self.app = app
        self.scheduling = scheduling
        self.health = health or Health()
        self.period, self.check = period, check
        self.last: float | None = None
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        from ..retention.purge import apply_retention

        if not self.app.config.retention.daily:
            await self.stopping.wait()  # a part that ends would stop serve: wait for the stop
            return
        while not self.stopping.is_set():
            try:
                await asyncio.wait_for(self.stopping.wait(), self.check)
                return
            except asyncio.TimeoutError:
                pass
            due = self.last is None or time.monotonic() - self.last >= self.period
            if not (due and self.scheduling.active):
                continue
            try:
                await asyncio.to_thread(apply_retention, self.app)
                self.last = time.monotonic()
                self.health.recovered("retention")
            except Exception as exc:  # a locked database today is tried again at the next check
                report_failure(self.health, "retention", exc, self.check, log)


class SchedulerLoop:
    """Lease, APScheduler and rule-file changes, one round every ttl/3. A failed round (database
    locked, a rule file vanishing mid-read) is retried with backoff while `health` says degraded;
    if the lease cannot be renewed within its ttl, scheduling stops here (another process may hold
    it by then) until a round succeeds again."""

    def __init__(self, app: App, ttl_seconds: float = 30.0, health: Health | None = None) -> None:
        self.app = app
        self.ttl = timedelta(seconds=ttl_seconds)
        self.health = health or Health()
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stopping = asyncio.Event()
        self.resync = asyncio.Event()
        self.scheduler: NoticeScheduler | None = None
        self.renewed = time.monotonic()
        self.seen = self._fingerprint()

    def _fingerprint(self) -> tuple[tuple[str, float], ...]:
        d = self.app.config
        out = []
        for p in [*rule_files(d.rules_dir), d.fields_file, *sorted(d.templates_dir.glob("*.j2"))]:
            try:
                out.append((str(p), p.stat().st_mtime))
            except OSError:  # gone between listing and stat: the next round sees the change
                continue
        return tuple(out)

    @property
    def active(self) -> bool:
        return self.scheduler is not None

    def _stand_down(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()
            self.scheduler = None

    async def _round(self) -> None:
        held = await asyncio.to_thread(lease.acquire, self.app.engine, LEASE, self.holder, self.ttl)
        self.renewed = time.monotonic()
        if held and self.scheduler is None:
            log.info("scheduler lease taken by %s: scheduling", self.holder)
            scheduler = NoticeScheduler(self.app, self.holder, self.health)
            try:
                scheduler.start()
            except BaseException:
                scheduler.shutdown()
                raise
            self.scheduler = scheduler
        elif not held and self.scheduler is not None:
            log.warning("scheduler lease lost: standing by")
            self._stand_down()
        current = self._fingerprint()
        if self.scheduler is not None and (self.resync.is_set() or current != self.seen):
            self.scheduler.sync()
        self.seen = current
        self.resync.clear()

    async def run(self) -> None:
        period = self.ttl.total_seconds() / 3
        backoff = Backoff(period, self.ttl.total_seconds())
        try:
            while not self.stopping.is_set():
                delay = period
                try:
                    await self._round()
                    backoff.reset()
                    self.health.recovered("scheduler")
                except Exception as exc:
                    delay = backoff.next()
                    report_failure(self.health, "scheduler", exc, delay, log)
                    if (
                        self.scheduler is not None
                        and time.monotonic() - self.renewed >= self.ttl.total_seconds()
                    ):
                        log.warning(
                            "scheduler lease could not be renewed within %gs: standing by",
                            self.ttl.total_seconds(),
                        )
                        self._stand_down()
                try:
                    await asyncio.wait_for(self.stopping.wait(), delay)
                except asyncio.TimeoutError:
                    pass
        finally:
            if self.scheduler is not None:
                self._stand_down()
                try:
                    await asyncio.to_thread(lease.release, self.app.engine, LEASE, self.holder)
                except Exception as exc:  # it expires by itself; a standby takes over after ttl
                    log.warning(
                        "scheduler lease not released (%s); it expires in %gs",
                        exc.__class__.__name__,
                        self.ttl.total_seconds(),
                    )
