"""Who is sending: each dispatcher process holds a heartbeat lease and stamps the rows it claims.

After `kill -9` a restarted `send` must settle the rows the dead process left in `sending`
before anything is resent, but it must not touch rows a live worker (another `send`, a `serve`)
is sending right now. An age threshold alone cannot tell the two apart quickly; the claimer's
liveness can: its lease has lapsed or was released, or it ran on this host and its process is
gone.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from ..scheduling import lease


def _host() -> str:
    """This host as seen from this process: the host name plus the boot and the PID namespace,
    so containers sharing a host name (or a cloned VM) never judge each other's process ids."""
    seen = []
    for source in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            seen.append(os.readlink(source) if source.endswith("/pid") else Path(source).read_text().strip())
        except OSError:
            seen.append("")
    return f"{socket.gethostname()[:30]}-{hashlib.sha256('|'.join(seen).encode()).hexdigest()[:8]}"


_HOST = _host()


def new_worker_id() -> str:
    return f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _lease_name(worker: str) -> str:
    return f"worker:{worker}"


def _process_gone(worker: str) -> bool:
    """True when `worker` ran on this host and its process no longer exists."""
    host, _, pid = worker.rpartition(":")[0].rpartition(":")
    if host != _HOST or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


class Worker:
    """This process as a sender: a heartbeat lease of `ttl`, renewed at most every `ttl / 4`.

    Others judge the lease by the database's clock (lease.py). The worker judges its own
    margin by the time elapsed since it asked for the renewal, on `clock` (monotonic: a wall
    clock set back would otherwise keep a lapsed worker sending)."""

    def __init__(
        self,
        engine: sa.Engine,
        ttl: timedelta,
        worker_id: str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine, self.ttl, self.clock = engine, ttl.total_seconds(), clock
        self.id = worker_id or new_worker_id()
        self._renewed: float | None = None

    def heartbeat(self) -> None:
        asked = self.clock()  # before the statement: the database's expiry is later than this + ttl
        if self._renewed is None or asked - self._renewed >= self.ttl / 4:
            if lease.acquire(self.engine, _lease_name(self.id), self.id, timedelta(seconds=self.ttl)):
                self._renewed = asked

    def fresh(self) -> bool:
        """Whether others still see this worker alive, with a margin: a worker whose lease may
        have lapsed (the database was too busy to renew it) must not send, or a restarted
        worker could settle and resend the same rows."""
        return self.ttl <= 0 or (
            self._renewed is not None and self.clock() - self._renewed < self.ttl * 3 / 4
        )

    def stop(self) -> None:
        lease.release(self.engine, _lease_name(self.id), self.id)
        self._renewed = None

    def dead_claimers(self, conn: sa.Connection, claimers: set[str]) -> set[str]:
        """Which of these claimers can no longer be sending (their lease expired by the
        database's clock, was released, or their process on this host is gone). This worker
        counts as dead too: it asks only between batches, so a row of its own still `sending`
        was abandoned (a failed round in `serve`)."""
        if not claimers:
            return set()
        alive = lease.alive(conn, [_lease_name(c) for c in claimers])
        return {c for c in claimers if c == self.id or c not in alive or _process_gone(c)}


async def keep_alive(worker: Worker) -> None:
    """Renew the worker's lease until cancelled, batches in flight included: a batch held back
    by a rate limit can take minutes, and a lapsed lease would let another worker settle (and
    resend) rows this one is still sending. A busy database is tried again soon; sends pause
    (LeaseLapsed) if the lease runs short meanwhile."""
    delay = max(1.0, worker.ttl / 4)
    while True:
        await asyncio.sleep(delay)
        try:
            await asyncio.to_thread(worker.heartbeat)
            delay = max(1.0, worker.ttl / 4)
        except sa.exc.OperationalError:
            delay = 1.0
