"""Opening the database: engine settings per dialect and migrations to head.

SQLite runs in WAL mode with one writer at a time: every transaction starts with
BEGIN IMMEDIATE so two processes never both read-then-write into a deadlock. Connections of
`read_only(engine)` start a plain deferred BEGIN instead: a long read (a preview of a million
residents, `audit verify`) then sees one consistent snapshot without holding the write lock, so
the dispatcher keeps writing meanwhile.
PostgreSQL is used as is (but without JIT, see below); workers there claim rows with FOR UPDATE
SKIP LOCKED.

Every engine hides bound parameters (`hide_parameters=True`): a failed INSERT of residents
would otherwise print their names, phone and ID numbers in the error and in every log line
that quotes it. URLs are shown with the password masked (config.masked_url).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ..config import masked_url
from ..errors import ConfigError
from ..masking import mask_text

MIGRATIONS = Path(__file__).parent / "migrations"


def create_db_engine(url: str, busy_timeout: float = 60.0) -> sa.Engine:
    """`busy_timeout`: seconds a statement waits for a lock another process holds (SQLite's busy
    timeout, PostgreSQL's lock_timeout) before failing with a lock timeout."""
    wait_ms = max(1, int(busy_timeout * 1000))
    try:
        kw: dict[str, object] = {}
        if sa.engine.make_url(url).get_backend_name() == "postgresql":
            # Rule queries are large CASE expressions over the whole register: PostgreSQL's JIT
            # spends longer compiling each one than it saves (bench/rules.py: 17.0 s -> 12.7 s).
            kw["connect_args"] = {"options": f"-c jit=off -c lock_timeout={wait_ms}"}
        engine = sa.create_engine(
            url, future=True, pool_pre_ping=not url.startswith("sqlite"), hide_parameters=True, **kw
        )
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigError(f"database.url {masked_url(url)!r} is not usable: {mask_text(str(exc))}") from None
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={wait_ms}")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # Freed space is zeroed, so a number retention removed (or an old version of a row)
            # does not linger in the file's free pages (retention/purge.py).
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn):  # type: ignore[no-untyped-def]
            conn.exec_driver_sql(
                "BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE"
            )

    return engine


_READ_ONLY = "notifier_read_only"


def scan_settings(conn: sa.Connection) -> None:
    """PostgreSQL settings for the rest of a transaction that aggregates the whole register
    (`rules preview --all`, rules/counting.py): a parallel plan (its statement returns a few
    rows, but the default setup and per-row costs keep the planner from parallelising an
    expensive filter), and enough memory to group without temp files (the default 4 MB sorted
    80,000 kept rows on disk). Workers per scan: the server's max_parallel_workers_per_gather,
    at least 2, within its max_parallel_workers. Nothing on SQLite."""
    if conn.dialect.name != "postgresql":
        return
    conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    conn.exec_driver_sql("SET LOCAL parallel_setup_cost = 100")
    conn.exec_driver_sql("SET LOCAL parallel_tuple_cost = 0.01")
    conn.exec_driver_sql(
        "SELECT set_config('max_parallel_workers_per_gather', "
        "greatest(current_setting('max_parallel_workers_per_gather')::int, 2)::text, true)"
    )


def read_only(engine: sa.Engine) -> sa.Engine:
    """The same engine (same pool) for connections that only read: see the module docstring."""
    return engine.execution_options(**{_READ_ONLY: True})


def _alembic_config(engine: sa.Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest migration (idempotent, cheap when already there)."""
    cfg = _alembic_config(engine)
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.connect() as conn:
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
    command.upgrade(cfg, "head")


def open_database(url: str, busy_timeout: float = 60.0) -> sa.Engine:
    try:
        engine = create_db_engine(url, busy_timeout)
        migrate(engine)
    except sa.exc.OperationalError as exc:
        raise ConfigError(f"cannot open database {masked_url(url)}: {db_error_text(exc)}") from None
    return engine


def db_error_text(exc: sa.exc.DBAPIError) -> str:
    """The driver's one-line reason, masked: no SQL, no parameters, and not PostgreSQL's DETAIL line,
    which quotes the offending values (`Key (phone)=(13800000001) already exists`)."""
    lines = str(exc.orig).strip().splitlines() or [type(exc.orig).__name__]
    return mask_text(lines[0])
