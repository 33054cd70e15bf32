"""On SQLite a long read does not hold the write lock: the dispatcher keeps writing while an
auditor verifies or staff preview a large audience."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from notifier.app import App
from notifier.audit import log as audit
from notifier.storage.schema import audit_events, leases
from tests.support.project import write_config


def test_a_reader_with_an_open_transaction_does_not_block_a_writer(tmp_path: Path) -> None:
    app = App.open(write_config(tmp_path, f"sqlite:///{tmp_path / 'n.db'}"))
    try:
        with app.engine.begin() as conn:
            audit.record(conn, "clerk", "test.before", "x")
        done = threading.Event()

        def write() -> None:
            with app.engine.begin() as conn:
                audit.record(conn, "clerk", "test.during", "x")
            done.set()

        with audit.snapshot(app.engine) as reader:  # what `audit verify` reads through
            seen = reader.execute(sa.select(sa.func.count()).select_from(audit_events)).scalar_one()
            writer = threading.Thread(target=write)
            writer.start()
            assert done.wait(5), "the writer waited for the reader's transaction"
            # ... and the reader still sees the state it started from.
            assert reader.execute(sa.select(sa.func.count()).select_from(audit_events)).scalar_one() == seen
            writer.join()
        with app.reader.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(audit_events)).scalar_one() == seen + 1
    finally:
        app.close()


def test_postgresql_connections_run_without_jit(pg_server: Any, tmp_path: Path) -> None:
    """JIT compiling each rule query costs more than it saves (docs/benchmarks.md, Rules)."""
    app = App.open(write_config(tmp_path, pg_server.create_database("nojit")))
    try:
        with app.reader.connect() as conn:
            assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
    finally:
        app.close()


def test_bulk_writes_store_times_as_sqlalchemy_does(tmp_path: Path) -> None:
    """Rows written by storage/bulk.executemany and by plain SQLAlchemy keep one text format on
    SQLite, so comparing times in SQL (due retries, stale rows) compares like with like."""
    app = App.open(write_config(tmp_path, f"sqlite:///{tmp_path / 'n.db'}"))
    try:
        at = datetime(2026, 4, 1, 4, 0, tzinfo=timezone.utc)
        with app.engine.begin() as conn:
            audit.append(conn, [audit.AuditEvent("clerk", "test.bulk", "x", {})], now=at)  # executemany
            conn.execute(leases.insert().values(name="n", holder="h", expires_at=at))  # SQLAlchemy
        with app.engine.connect() as conn:
            raw = conn.exec_driver_sql(
                "SELECT (SELECT ts FROM audit_events ORDER BY seq DESC LIMIT 1), "
                "(SELECT expires_at FROM leases)"
            ).one()
        assert raw[0] == raw[1] == "2026-04-01 04:00:00.000000"
    finally:
        app.close()


def test_migration_rewrites_times_stored_in_the_drivers_format(tmp_path: Path) -> None:
    from alembic import command

    from notifier.storage.db import _alembic_config, create_db_engine, migrate

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_db_engine(url)
    command.upgrade(_alembic_config(engine), "0003")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO leases VALUES ('a', 'h', '2026-04-01 04:00:00+00:00'), "
            "('b', 'h', '2026-04-01 04:00:00.250000+00:00'), ('c', 'h', '2026-04-01 04:00:00.500000')"
        )
    migrate(engine)
    with engine.connect() as conn:
        stored = {name: at for name, at in conn.exec_driver_sql("SELECT name, expires_at FROM leases")}
    engine.dispose()
    assert stored == {
        "a": "2026-04-01 04:00:00.000000",
        "b": "2026-04-01 04:00:00.250000",
        "c": "2026-04-01 04:00:00.500000",
    }
