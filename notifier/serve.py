"""`notifier serve`: the long-running process. One event loop runs the HTTP app (uvicorn) and a
dispatcher loop that sends due deliveries every `dispatch_interval_seconds`.

Stopping (SIGTERM / SIGINT) is what makes a deploy safe: new work stops at once (no new batch is
claimed, the HTTP server stops accepting), the batch in flight finishes and is recorded, and the
process exits 0 with no delivery left `sending`. If that takes longer than
`shutdown_timeout_seconds` the batch is abandoned and the exit status is 1; the rows it left
`sending` are reconciled against the provider by the next start, never blindly resent.

uvicorn's own signal handling is replaced (it re-raises the signal after shutting down, which
would turn a clean stop into death by SIGTERM); this module owns the signals and tells uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from .app import App
from .channels.registry import providers_for
from .delivery.dispatch import Dispatcher, DispatchReport
from .errors import ConfigError
from .health import Backoff, Health, describe, report_failure
from .scheduling.service import CheckpointLoop, RetentionLoop, SchedulerLoop
from .status import DeliveryStatus
from .web import build_web_app

log = logging.getLogger("notifier.serve")
BACKOFF_CAP_SECONDS = 60.0  # a locked database is retried at least this often


@dataclass(frozen=True)
class ServeSettings:
    host: str
    port: int
    interval: float
    shutdown_timeout: float

    @classmethod
    def from_config(cls, app: App, host: str | None = None, port: int | None = None) -> "ServeSettings":
        s = app.config.serve
        where = f"{app.config.where()}: [serve]"
        settings = cls(
            host or s.host,
            port if port is not None else s.port,
            s.dispatch_interval_seconds,
            s.shutdown_timeout_seconds,
        )
        if not 0 <= settings.port <= 65535:
            raise ConfigError(f"{where} port must be 0..65535, not {settings.port}")
        if settings.interval <= 0 or settings.shutdown_timeout <= 0:
            raise ConfigError(
                f"{where} dispatch_interval_seconds and shutdown_timeout_seconds must be positive"
            )
        return settings


class DispatchLoop:
    """Sends due deliveries every `interval` seconds until `stopping` is set (which also stops a
    round from claiming another batch: the one in flight is sent and recorded). One dispatcher
    serves every round, so failover state (a resting provider), rate limits and the backoff of lookups that
    settle interrupted sends carry over from one round to the next. A failed round (database
    locked or briefly away) never ends the service: it is retried with backoff while `health`
    says degraded."""

    def __init__(self, app: App, interval: float, health: Health | None = None) -> None:
        self.app, self.interval = app, interval
        self.health = health or Health()
        self.stopping = asyncio.Event()
        self.dispatcher = Dispatcher(app, providers_for(app.config), actor="serve")
        self.rounds = 0
        self.last: DispatchReport | None = None

    async def run(self) -> None:
        backoff = Backoff(self.interval, max(self.interval, BACKOFF_CAP_SECONDS))
        while not self.stopping.is_set():
            delay = self.interval
            try:
                self.last = await self.dispatcher.run(stop=self.stopping)
                self.rounds += 1
                backoff.reset()
                self.health.recovered("dispatch")
                if self.last.sent or self.last.failed or self.last.skipped or self.last.reconciled:
                    log.info(
                        "dispatch: sent %d, failed %d, skipped %d, retrying %d, reconciled %d, remaining %d, "
                        "unknown %d",
                        self.last.sent,
                        self.last.failed,
                        self.last.skipped,
                        self.last.retried,
                        self.last.reconciled,
                        self.last.remaining,
                        self.last.unknown,
                    )
            except Exception as exc:
                delay = backoff.next()
                report_failure(self.health, "dispatch", exc, delay, log)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # signals are ours (see the module docstring)
        yield


def _listen(host: str, port: int) -> socket.socket:
    """Bind before anything starts, so a taken port is a clear error, not uvicorn's sys.exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve(app: App, settings: ServeSettings, *, on_ready: Any = None) -> int:
    """Run until SIGTERM / SIGINT; 0 after a clean stop, 1 if the in-flight batch overran the timeout."""
    sock = _listen(settings.host, settings.port)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    health = Health()
    scheduling = SchedulerLoop(app, app.config.schedule.lease_seconds, health)
    checkpoints = CheckpointLoop(app, health)
    retention = RetentionLoop(app, scheduling, health)
    loop.add_signal_handler(signal.SIGHUP, scheduling.resync.set)  # re-read rules now
    config = uvicorn.Config(
        build_web_app(app, health=health),
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_timeout)),
    )
    server = _Server(config)
    dispatch = DispatchLoop(app, settings.interval, health)
    tasks = {
        asyncio.create_task(server.serve(sockets=[sock]), name="http"),
        asyncio.create_task(dispatch.run(), name="dispatch"),
        asyncio.create_task(scheduling.run(), name="scheduler"),
        asyncio.create_task(checkpoints.run(), name="checkpoints"),
        asyncio.create_task(retention.run(), name="retention"),
    }
    host, port = sock.getsockname()[:2]
    log.info("serving on http://%s:%d; dispatching every %gs", host, port, settings.interval)
    if on_ready is not None:
        on_ready(host, port)
    failed = await _until_stopped(tasks, stop)
    log.info("stopping: no new work; waiting up to %gs for the batch in flight", settings.shutdown_timeout)
    scheduling.stopping.set()  # no new firings, lease released for a standby
    checkpoints.stopping.set()
    retention.stopping.set()
    dispatch.stopping.set()
    server.should_exit = True
    clean = await _finish(tasks, settings.shutdown_timeout)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.remove_signal_handler(sig)
    sock.close()
    left = await _left_sending(dispatch)
    if not clean:
        log.error(
            "shutdown timeout: the batch in flight was abandoned; %d deliveries are `sending` and will be "
            "reconciled at the next start",
            left,
        )
        return 1
    if left:  # another worker's batch, or one abandoned earlier: not ours to settle here
        log.warning("%d deliveries are `sending` (another worker, or an earlier crash)", left)
    log.info("stopped cleanly after %d dispatch round(s)", dispatch.rounds)
    return 1 if failed else 0


async def _until_stopped(tasks: set[asyncio.Task[Any]], stop: asyncio.Event) -> bool:
    """Wait for a signal or for a part to end; True if a part failed (each failure logged)."""
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait(tasks | {waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    failed = [t for t in done if t is not waiter and t.exception() is not None]
    for t in failed:
        log.error("%s stopped: %r", t.get_name(), t.exception())
    return bool(failed)


async def _finish(tasks: set[asyncio.Task[Any]], timeout: float) -> bool:
    """Let the parts finish their work in flight; False if some overran `timeout` (cancelled)."""
    pending = {t for t in tasks if not t.done()}
    if not pending:
        return True
    _, late = await asyncio.wait(pending, timeout=timeout)
    for t in late:
        t.cancel()
    if late:
        await asyncio.wait(late, timeout=5)
    return not late


async def _left_sending(dispatch: DispatchLoop) -> int:
    """Deliveries still `sending` (of any worker), or 0 if the database cannot say."""
    try:
        return await asyncio.to_thread(
            dispatch.dispatcher.count, [DeliveryStatus.SENDING], None, approved_runs=False
        )
    except Exception as exc:  # a locked or vanished database must not turn a stop into a traceback
        log.warning("could not count deliveries left `sending`: %s", describe(exc))
        return 0
