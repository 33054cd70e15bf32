"""The database's clock, as SQL: what leases, heartbeats and the shared rate limit are judged by.

Workers on several machines never agree on the time to the second (NTP drifts, a VM resumes, a
clock is set by hand); they all agree on their one database's. So an expiry is written as "the
database's now plus ttl" and compared with the database's now, and no worker's clock enters it.

PostgreSQL: `now()` (the transaction's start: the transactions here are short, and an older
"now" only makes a lease look fresher, never expired early) and `clock_timestamp()` (the
moment itself) for the rate limit's virtual time. SQLite: `strftime(..., 'now')`, UTC text in
the layout SQLAlchemy stores datetimes in (microseconds, no zone), so it compares with the
stored values as text; milliseconds are all SQLite's clock gives.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from .schema import TS


class db_time(FunctionElement[datetime]):  # noqa: N801 (an SQL function, named like one)
    """The database's current time plus `seconds` (a timestamp, comparable with TS columns)."""

    type = TS
    inherit_cache = True
    name = "db_time"

    def __init__(self, seconds: float = 0.0) -> None:
        super().__init__(sa.literal(float(seconds), sa.Float()))


class db_epoch(FunctionElement[float]):  # noqa: N801
    """The database's current time as seconds since 1970 (a float): virtual time for the shared
    rate limit, where arithmetic in seconds is simpler and exact on both engines."""

    type = sa.Float()
    inherit_cache = True
    name = "db_epoch"


@compiles(db_time, "postgresql")
def _pg_time(element: db_time, compiler: Any, **kw: Any) -> str:
    return f"(now() + make_interval(secs => {compiler.process(element.clauses, **kw)}))"


@compiles(db_time)
def _sqlite_time(element: db_time, compiler: Any, **kw: Any) -> str:
    offset = compiler.process(element.clauses, **kw)
    return f"strftime('%Y-%m-%d %H:%M:%f000', 'now', printf('%+.3f seconds', {offset}))"


@compiles(db_epoch, "postgresql")
def _pg_epoch(element: db_epoch, compiler: Any, **kw: Any) -> str:
    return "CAST(extract(epoch FROM clock_timestamp()) AS double precision)"


@compiles(db_epoch)
def _sqlite_epoch(element: db_epoch, compiler: Any, **kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"
