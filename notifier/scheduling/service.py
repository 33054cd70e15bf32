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
import uuid
from datetime import timedelta

from ..app import App
from ..rules.load import rule_files
from . import lease
from .scheduler import NoticeScheduler

log = logging.getLogger("notifier.scheduler")
LEASE = "scheduler"


class CheckpointLoop:
    """`serve` writes an audit checkpoint every `[audit] checkpoint_interval_seconds` (0: never),
    so a rewrite of the log can be dated to within one interval."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.interval = float(app.config.raw["audit"].get("checkpoint_interval_seconds", 3600))
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
            except Exception:  # a refused checkpoint (broken log) must not stop the service
                log.exception("audit checkpoint failed")


class SchedulerLoop:
    def __init__(self, app: App, ttl_seconds: float = 30.0) -> None:
        self.app = app
        self.ttl = timedelta(seconds=ttl_seconds)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stopping = asyncio.Event()
        self.resync = asyncio.Event()
        self.scheduler: NoticeScheduler | None = None
        self.seen = self._fingerprint()

    def _fingerprint(self) -> tuple[tuple[str, float], ...]:
        d = self.app.config
        paths = [*rule_files(d.rules_dir), d.fields_file, *sorted(d.templates_dir.glob("*.j2"))]
        return tuple((str(p), p.stat().st_mtime) for p in paths if p.exists())

    @property
    def active(self) -> bool:
        return self.scheduler is not None

    async def run(self) -> None:
        try:
            while not self.stopping.is_set():
                held = await asyncio.to_thread(lease.acquire, self.app.engine, LEASE, self.holder, self.ttl)
                if held and self.scheduler is None:
                    log.info("scheduler lease taken by %s: scheduling", self.holder)
                    self.scheduler = NoticeScheduler(self.app, self.holder)
                    self.scheduler.start()
                elif not held and self.scheduler is not None:
                    log.warning("scheduler lease lost: standing by")
                    self.scheduler.shutdown()
                    self.scheduler = None
                current = self._fingerprint()
                if self.scheduler is not None and (self.resync.is_set() or current != self.seen):
                    self.scheduler.sync()
                self.seen = current
                self.resync.clear()
                try:
                    await asyncio.wait_for(self.stopping.wait(), self.ttl.total_seconds() / 3)
                except asyncio.TimeoutError:
                    pass
        finally:
            if self.scheduler is not None:
                self.scheduler.shutdown()
                self.scheduler = None
                await asyncio.to_thread(lease.release, self.app.engine, LEASE, self.holder)
