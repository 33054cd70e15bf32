"""A database lease: one holder at a time for a named role (e.g. the scheduler), with expiry.

The holder renews before `ttl` runs out; if it dies, the lease expires and a standby takes it.
Expiry is written and judged by the database's clock (storage/dbclock.py), never a process's:
a worker whose clock runs ahead must not take a live holder's lease, nor one whose clock runs
behind keep a dead holder's. Works the same on SQLite and PostgreSQL: a conditional UPDATE, or
an INSERT for a new name.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from ..storage.dbclock import db_time
from ..storage.schema import leases


def acquire(engine: sa.Engine, name: str, holder: str, ttl: timedelta) -> bool:
    """Take or renew the lease; False while someone else holds an unexpired one."""
    expires = db_time(ttl.total_seconds())
    with engine.begin() as conn:
        taken = conn.execute(
            leases.update()
            .where(leases.c.name == name, sa.or_(leases.c.holder == holder, leases.c.expires_at < db_time()))
            .values(holder=holder, expires_at=expires)
        ).rowcount
        if taken:
            return True
        if conn.execute(sa.select(leases.c.name).where(leases.c.name == name)).first() is not None:
            return False
        try:
            with conn.begin_nested():
                conn.execute(leases.insert().values(name=name, holder=holder, expires_at=expires))
        except sa.exc.IntegrityError:
            return False
        return True


def release(engine: sa.Engine, name: str, holder: str) -> None:
    with engine.begin() as conn:
        conn.execute(leases.delete().where(leases.c.name == name, leases.c.holder == holder))


def alive(conn: sa.Connection, names: list[str]) -> set[str]:
    """The holders of those leases that have not expired, by the database's clock."""
    return set(
        conn.execute(
            sa.select(leases.c.holder).where(leases.c.name.in_(names), leases.c.expires_at >= db_time())
        ).scalars()
    )
