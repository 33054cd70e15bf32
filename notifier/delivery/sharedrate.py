"""A provider's `rate_per_second` held across every worker on the database, not per process.

One row per provider holds the limit's virtual time (GCRA): `next_at`, the database's clock in
seconds, when the next slot is free. A worker takes a small block of slots in one UPDATE
(`next_at = max(next_at, now - (burst - 1) / rate) + n / rate`), reads back where its block
starts relative to the database's now, and releases the slots on its own monotonic clock
(channels/ratelimit.SharedBucket). Every worker's slots therefore lie on one time line, 1/rate
apart, whichever machine they run on; the only error is the time the UPDATE's answer takes to
come back, and it can only make a slot later.

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


def reserve(engine: sa.Engine, provider: str, rate: float, burst: float, count: int) -> float:
    """Take `count` slots of `provider`'s shared limit: the first, on this process's monotonic
    clock (slot i is at first + i / rate). The database's time is read in the same statement
    and mapped to the monotonic clock as soon as the answer is here, in this thread: measured
    after the event loop resumed, a busy loop would shift the whole block late, onto the slots
    of the next worker's block."""
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
    return here + float(row[0]) - count * step - float(row[1])


def shared_bucket(worker: Worker, provider: str, rate: float, burst: float) -> SharedBucket:
    """The pacer of `provider` for this worker, its slots from the database. While the database
    cannot be reached the worker waits; once its own lease may have lapsed it gets no slot (and
    sends nothing: send.py gives the attempt back)."""
    paced = rate * (1 - HEADROOM)

    async def slots(n: int) -> Sequence[float]:
        while True:
            try:
                first = await asyncio.to_thread(reserve, worker.engine, provider, paced, burst, n)
            except sa.exc.OperationalError as exc:
                if not worker.fresh():
                    return ()
                log.warning(
                    "shared rate limit of %s not reachable (%s); waiting", provider, db_error_text(exc)
                )
                await asyncio.sleep(1.0)
                continue
            return [first + i / paced for i in range(n)]

    return SharedBucket(rate, slots, block=max(1, min(MAX_BLOCK, math.ceil(paced * BLOCK_SECONDS))))
