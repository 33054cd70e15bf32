"""On SQLite a long read does not hold the write lock: the dispatcher keeps writing while an
auditor verifies or staff preview a large audience."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from notifier.app import App
from notifier.audit import log as audit

from .conftest import write_config


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

        with audit.snapshot(app.engine) as reader:   # what `audit verify` reads through
            seen = reader.execute(sa.select(sa.func.count()).select_from(audit.audit_events)).scalar_one()
            writer = threading.Thread(target=write)
            writer.start()
            assert done.wait(5), "the writer waited for the reader's transaction"
            # ... and the reader still sees the state it started from.
            assert reader.execute(sa.select(sa.func.count()).select_from(audit.audit_events)).scalar_one() == seen
            writer.join()
        with app.reader.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(audit.audit_events)).scalar_one() == seen + 1
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
