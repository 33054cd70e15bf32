"""The audit table refuses every rewrite (SQLite REPLACE, PostgreSQL TRUNCATE, on fresh and upgraded
databases), and `audit verify` fails when the checkpoint file is deleted, truncated or swapped for
an older one, or the chain is shorter than the newest checkpoint. Real SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from notifier.app import App
from notifier.audit import log as audit
from notifier.audit.checkpoints import read_checkpoints, take_checkpoint, verify_log
from notifier.cli import main
from notifier.errors import StateError
from notifier.storage.db import _alembic_config, create_db_engine, migrate
from notifier.storage.schema import audit_events, audit_head
from tests.support.tamper import drop_triggers


def add_events(engine: sa.Engine, n: int) -> None:
    with engine.begin() as conn:
        for i in range(n):
            audit.record(conn, "clerk", "note", f"run:{i}", text=f"event {i}")


def rewrites(dialect: str) -> list[str]:
    """Every statement that would rewrite event 1 without an UPDATE or DELETE."""
    copy = (
        "SELECT seq, ts, actor, 'forged', subject, payload, prev_hash, hash FROM audit_events WHERE seq = 1"
    )
    if dialect == "sqlite":
        return [
            f"INSERT OR REPLACE INTO audit_events {copy}",
            f"REPLACE INTO audit_events {copy}",
            f"INSERT INTO audit_events {copy} ON CONFLICT (seq) DO UPDATE SET action = 'forged'",
            "DELETE FROM audit_events",
            "UPDATE audit_events SET action = 'forged'",
        ]
    return [
        "TRUNCATE audit_events",
        "TRUNCATE audit_events, audit_head",
        "TRUNCATE audit_events CASCADE",
        f"INSERT INTO audit_events {copy} ON CONFLICT (seq) DO UPDATE SET action = 'forged'",
        "DELETE FROM audit_events",
        "UPDATE audit_events SET action = 'forged'",
    ]


def assert_refuses_rewrites(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        before = conn.execute(sa.select(audit_events).order_by(audit_events.c.seq)).all()
    assert len(before) == 3
    for stmt in rewrites(engine.dialect.name):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.exec_driver_sql(stmt)
    with audit.snapshot(engine) as conn:
        assert conn.execute(sa.select(audit_events).order_by(audit_events.c.seq)).all() == before
        assert audit.verify(conn).ok
    add_events(engine, 1)  # appending still works
    with audit.snapshot(engine) as conn:
        assert audit.verify(conn).events == 4


def test_fresh_database_refuses_replace_and_truncate(db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        migrate(engine)
        add_events(engine, 3)
        assert_refuses_rewrites(engine)
    finally:
        engine.dispose()


def test_upgraded_database_refuses_replace_and_truncate(db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        command.upgrade(_alembic_config(engine), "0005")  # a database of the previous release, with events
        add_events(engine, 3)
        migrate(engine)
        assert_refuses_rewrites(engine)
    finally:
        engine.dispose()


# -- the checkpoint file ----------------------------------------------------------------------


def verify_cli(capsys: pytest.CaptureFixture[str], app: App, *extra: str) -> tuple[int, dict[str, Any], str]:
    code = main(["--config", str(app.config.path), "audit", "verify", "--json", *extra])
    out = json.loads(capsys.readouterr().out)
    code_text = main(["--config", str(app.config.path), "audit", "verify", *extra])
    text = capsys.readouterr().out
    assert code_text == code
    return code, out, text


@pytest.fixture
def checkpointed(app: App) -> tuple[App, Path]:
    """Three checkpoints (after events 2, 4 and 6) and two events after the last."""
    for _ in range(3):
        add_events(app.engine, 2)
        path = Path(take_checkpoint(app)["file"])
    add_events(app.engine, 2)
    return app, path


def test_verify_without_any_checkpoint_yet_is_intact(capsys: pytest.CaptureFixture[str], app: App) -> None:
    add_events(app.engine, 2)
    code, out, text = verify_cli(capsys, app)
    assert code == 0 and out["ok"] and "intact" in text


@pytest.mark.parametrize(
    "damage, says",
    [
        ("delete", "is missing; it held 3 checkpoint(s) up to event 6"),
        ("truncate", "holds 2 checkpoint(s) up to event 4, but held 3 checkpoint(s) up to event 6"),
        ("empty", "holds 0 checkpoint(s) up to event 0, but held 3"),
        ("older copy", "holds 1 checkpoint(s) up to event 2, but held 3"),
    ],
)
def test_missing_or_shortened_checkpoint_file_fails(
    capsys: pytest.CaptureFixture[str], checkpointed: tuple[App, Path], damage: str, says: str
) -> None:
    app, path = checkpointed
    saved = path.read_text(encoding="utf-8")
    lines = saved.splitlines(keepends=True)
    if damage == "delete":
        path.unlink()
    else:
        path.write_text(
            {"truncate": "".join(lines[:2]), "empty": "", "older copy": lines[0]}[damage], encoding="utf-8"
        )
    for extra in ((), ("--from-checkpoint",)):
        code, out, text = verify_cli(capsys, app, *extra)
        assert code == 1 and not out["ok"] and out["kind"] == "checkpoint_file" and says in out["reason"], out
        assert "BROKEN (checkpoint_file): checkpoint file" in " ".join(text.split()) and "intact" not in text
    with pytest.raises(StateError, match="no checkpoint written"):  # nor does a new checkpoint paper over it
        take_checkpoint(app)
    path.write_text(saved, encoding="utf-8")  # restored from its copy
    assert verify_cli(capsys, app)[0] == 0


def test_verify_remembers_a_longer_file_it_read(
    capsys: pytest.CaptureFixture[str], checkpointed: tuple[App, Path], tmp_path: Path
) -> None:
    """A file brought from elsewhere (a copy with a checkpoint this database never wrote) raises the mark."""
    app, path = checkpointed
    with audit.snapshot(app.engine) as conn:
        seq, h = audit.read_head(conn)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"seq": seq, "hash": h, "at": "2026-12-01T00:00:00Z"}) + "\n")
    assert verify_cli(capsys, app)[0] == 0
    path.write_text("".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:3]), encoding="utf-8")
    code, out, _ = verify_cli(capsys, app)
    assert code == 1 and f"held 4 checkpoint(s) up to event {seq}" in out["reason"]


def test_chain_shorter_than_the_newest_checkpoint_fails(
    capsys: pytest.CaptureFixture[str], checkpointed: tuple[App, Path]
) -> None:
    app, path = checkpointed
    assert [c.seq for c in read_checkpoints(path)] == [2, 4, 6]
    with app.engine.begin() as conn:  # as an attacker: triggers dropped, the tail cut, the head moved back
        drop_triggers(conn)
        conn.execute(audit_events.delete().where(audit_events.c.seq > 5))
        conn.execute(
            audit_head.update().values(
                seq=5,
                hash=conn.execute(sa.select(audit_events.c.hash).where(audit_events.c.seq == 5)).scalar_one(),
            )
        )
    for extra in ((), ("--from-checkpoint",)):
        code, out, _ = verify_cli(capsys, app, *extra)
        assert (code, out["ok"], out["kind"], out["first_bad"]) == (1, False, "missing", 6), out
        assert "recorded 6 events; the log ends at event 5" in out["reason"]
    assert verify_log(app)[0].ok is False
