"""A database lease: one holder at a time for a named role (e.g. the scheduler), with expiry.

The holder renews before `ttl` runs out; if it dies, the lease expires and a standby takes it.
Works the same on SQLite and PostgreSQL: a conditional UPDATE, or an INSERT for a new name.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from ..clock import utcnow
from ..storage.schema import leases


def acquire(engine: sa.Engine, name: str, holder: str, ttl: timedelta, now: datetime | None = None) -> bool:
    """Take or renew the lease; False while someone else holds an unexpired one."""
    now = now or utcnow()
    with engine.begin() as conn:
        taken = conn.execute(
            leases.update()
            .where(leases.c.name == name, sa.or_(leases.c.holder == holder, leases.c.expires_at < now))
            .values(holder=holder, expires_at=now + ttl)
        ).rowcount
        if taken:
            return True
        if conn.execute(sa.select(leases.c.name).where(leases.c.name == name)).first() is not None:
            return False
        try:
            with conn.begin_nested():
                conn.execute(leases.insert().values(name=name, holder=holder, expires_at=now + ttl))
        except sa.exc.IntegrityError:
            return False
        return True


def release(engine: sa.Engine, name: str, holder: str) -> None:
    with engine.begin() as conn:
        conn.execute(leases.delete().where(leases.c.name == name, leases.c.holder == holder))
