"""A provider's `rate_per_second` held across every worker on the database, not per process.

One row per provider holds the limit's virtual time (GCRA): `next_at`, the database's clock in
seconds, when the next slot is free. A worker takes a small block of slots in one UPDATE
(`next_at = max(next_at, now - (burst - 1) / rate) + n / rate`), reads back where its block
starts and the database's now, and releases the slots on its own monotonic clock
(channels/ratelimit.SharedBucket). Every worker's slots therefore lie on one time line, 1/rate
apart, whichever machine they run on. The database's clock is mapped onto the worker's by the
fastest answer of the last few seconds (ClockMap), not by each answer: an answer that comes
back late (the thread did not get the CPU, the row was locked by another worker) would shift
that whole block late, onto the slots the other workers release on time.

The limit is paced at (1 - HEADROOM) of the configured rate: wake-ups are never early but can
be a few milliseconds late, and across processes that lateness differs. With 1 % spare, a
provider counting per second never sees more than its rate unless one process wakes 10 ms later
than another; the long-run rate is still within 1 % of the configured one. A process that wakes
more than 20 ms late for a slot (it did not get the CPU) gives the slot up (SharedBucket), so a
stall costs rate and never becomes a burst.

A block is at most BLOCK_SECONDS of slots, so a worker that dies (or goes idle) wastes little of
the rate, and workers joining share it at once. On SQLite (one worker at a time, in effect) the
same code runs; the row is written in the writer's turn like every other change.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Sequence

import sqlalchemy as sa

from ..channels.ratelimit import SharedBucket
from ..storage.db import db_error_text
from ..storage.dbclock import db_epoch
from ..storage.schema import rate_limits
from .workers import Worker

log = logging.getLogger("notifier.delivery")

HEADROOM = 0.01
BLOCK_SECONDS = 0.2
MAX_BLOCK = 20


class ClockMap:
    """This process's monotonic clock minus the database's, as the least difference seen in
    the last `window` seconds: an answer read at the database's time t arrives here at
    local(t) + delay, so the smallest difference is the one with the least delay, the truest.
    The window follows the clocks' slow drift (NTP slews both, by at most 0.5 ms a second)."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._samples: collections.deque[tuple[float, float]] = collections.deque()

    def add(self, here: float, db_now: float) -> float:
        """One answer's times; returns the offset to add to a database time."""
        sample, q = here - db_now, self._samples
        while q and q[-1][1] >= sample:  # a sliding-window minimum: only smaller ones stay
            q.pop()
        q.append((here, sample))
        while q[0][0] < here - self.window:
            q.popleft()
        return q[0][1]


def reserve(
    engine: sa.Engine, provider: str, rate: float, burst: float, count: int
) -> tuple[float, float, float]:
    """Take `count` slots of `provider`'s shared limit: (the first slot in the database's time,
    the database's now, this process's monotonic time when the answer came). Slot i is at
    first + i / rate. The local time is read as soon as the answer is here, in this thread:
    read after the event loop resumed, a busy loop would add its delay to the sample."""
    step = 1.0 / rate
    rl = rate_limits
    with engine.begin() as conn:
        start = sa.func.greatest if engine.dialect.name == "postgresql" else sa.func.max
        begins = start(rl.c.next_at, db_epoch() - (max(1.0, burst) - 1) * step)
        row = conn.execute(
            rl.update()
            .where(rl.c.provider == provider)
            .values(next_at=begins + count * step)
            .returning(rl.c.next_at, db_epoch())
        ).first()
        here = time.monotonic()
        if row is None:
            try:
                with conn.begin_nested():
                    row = conn.execute(
                        rl.insert()
                        .values(provider=provider, next_at=db_epoch() + count * step)
                        .returning(rl.c.next_at, db_epoch())
                    ).one()
                    here = time.monotonic()
            except sa.exc.IntegrityError:  # another worker's first block came first
                row = conn.execute(
                    rl.update()
                    .where(rl.c.provider == provider)
                    .values(next_at=begins + count * step)
                    .returning(rl.c.next_at, db_epoch())
                ).one()
                here = time.monotonic()
    return float(row[0]) - count * step, float(row[1]), here


def shared_bucket(worker: Worker, provider: str, rate: float, burst: float) -> SharedBucket:
    """The pacer of `provider` for this worker, its slots from the database. While the database
    cannot be reached the worker waits; once its own lease may have lapsed it gets no slot (and
    sends nothing: send.py gives the attempt back)."""
    paced = rate * (1 - HEADROOM)
    clock = ClockMap()

    async def slots(n: int) -> Sequence[float]:
        while True:
            try:
                first, db_now, here = await asyncio.to_thread(
                    reserve, worker.engine, provider, paced, burst, n
                )
            except sa.exc.OperationalError as exc:
                if not worker.fresh():
                    return ()
                log.warning(
                    "shared rate limit of %s not reachable (%s); waiting", provider, db_error_text(exc)
                )
                await asyncio.sleep(1.0)
                continue
            local = first + clock.add(here, db_now)
            return [local + i / paced for i in range(n)]

    return SharedBucket(rate, slots, block=max(1, min(MAX_BLOCK, math.ceil(paced * BLOCK_SECONDS))))
