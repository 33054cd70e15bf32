"""The one transition function: table-checked, applied to rows still in the source state,
audited for exactly the rows it moved (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import threading

import pytest
import sqlalchemy as sa

from notifier.app import App
from notifier.delivery.transitions import Move, move, move_each, move_run
from notifier.errors import TransitionForbidden
from notifier.status import DeliveryStatus as S
from notifier.status import RunStatus
from notifier.storage.schema import audit_events, deliveries

from ..support.rows import NOW, bare_run


def _run(app: App, n: int) -> tuple[int, list[int]]:
    return bare_run(app, n)


def _status_events(app: App) -> list[tuple[str, str, str]]:
    with app.engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit_events.c.subject, audit_events.c.payload)
            .where(audit_events.c.action == "delivery.status")
            .order_by(audit_events.c.seq)
        ).all()
    return [(s, json.loads(p)["from"], json.loads(p)["to"]) for s, p in rows]


def test_move_changes_only_rows_still_in_the_source_state_and_audits_them(app: App) -> None:
    run_id, ids = _run(app, 4)
    with app.engine.begin() as conn:
        assert move(conn, ids[:2], from_=S.PENDING, to=S.SENDING, actor="t", now=NOW) == ids[:2]
        # ids[0..1] are `sending` now: a skip of all four moves only the two still pending
        moved = move(
            conn,
            None,
            from_=S.PENDING,
            to=S.SKIPPED,
            actor="t",
            now=NOW,
            reason="why",
            where=[deliveries.c.run_id == run_id],
        )
    assert moved == ids[2:]
    assert _status_events(app) == [(f"delivery:{i}", "pending", "sending") for i in ids[:2]] + [
        (f"delivery:{i}", "pending", "skipped") for i in ids[2:]
    ]


def test_a_forbidden_move_raises_before_touching_anything(app: App) -> None:
    _, ids = _run(app, 1)
    with app.engine.begin() as conn, pytest.raises(TransitionForbidden, match="from skipped to sending"):
        move(conn, ids, from_=S.SKIPPED, to=S.SENDING, actor="t", now=NOW)
    with app.engine.begin() as conn, pytest.raises(TransitionForbidden):
        move_each(conn, [Move(ids[0], S.DELIVERED)], from_=S.PENDING, actor="t", now=NOW)
    with app.engine.begin() as conn, pytest.raises(TransitionForbidden, match="run cannot move"):
        move_run(conn, [1], from_=RunStatus.CANCELLED, to=RunStatus.APPROVED, actor="t", now=NOW)
    assert _status_events(app) == []


def test_move_each_respects_expectations_and_per_row_values(app: App) -> None:
    _, ids = _run(app, 3)
    with app.engine.begin() as conn:
        move(conn, ids, from_=S.PENDING, to=S.SENDING, actor="t", now=NOW)
        applied, _ = move_each(
            conn,
            [
                Move(ids[0], S.SENT, {"provider_message_id": "SM1"}),
                Move(ids[1], S.FAILED, {"provider_message_id": None}, reason="refused"),
                Move(ids[2], S.SENT, {"provider_message_id": "SM3"}, expect={"attempts": 7}),
            ],
            from_=S.SENDING,
            actor="t",
            now=NOW,
        )
        rows = {r.id: r for r in conn.execute(sa.select(deliveries))}
    assert [m.id for m in applied] == ids[:2]
    assert (rows[ids[0]].status, rows[ids[0]].provider_message_id) == ("sent", "SM1")
    assert (rows[ids[1]].status, rows[ids[1]].reason) == ("failed", "refused")
    assert rows[ids[2]].status == "sending"  # its expectation did not hold: left alone, not audited
    assert [e for e in _status_events(app) if e[1] == "sending"] == [
        (f"delivery:{ids[0]}", "sending", "sent"),
        (f"delivery:{ids[1]}", "sending", "failed"),
    ]


def test_runs_move_through_their_own_table(app: App) -> None:
    run_id, _ = _run(app, 0)
    with app.engine.begin() as conn:
        assert move_run(
            conn, [run_id], from_=RunStatus.APPROVED, to=RunStatus.COMPLETED, actor="t", now=NOW
        ) == [run_id]
        # a second completion finds it completed already: nothing moved, nothing audited twice
        assert (
            move_run(conn, [run_id], from_=RunStatus.APPROVED, to=RunStatus.COMPLETED, actor="t", now=NOW)
            == []
        )
        actions = conn.execute(sa.select(audit_events.c.action).order_by(audit_events.c.seq)).scalars().all()
    assert actions == ["run.completed"]


def test_a_skip_racing_a_claim_audits_only_the_rows_it_changed_postgresql(
    pg_server: object, tmp_path
) -> None:
    """On PostgreSQL a cancel/skip that reads the pending ids and then updates them audits rows a
    dispatcher claimed in between. move() takes the ids from the UPDATE itself: the skip waits
    for the claim's row locks, re-checks `status = pending` and moves (and audits) only the rest."""
    from ..support.project import write_config

    url = pg_server.create_database("transitions_race")  # type: ignore[attr-defined]
    app = App.open(write_config(tmp_path, url))
    try:
        run_id, ids = _run(app, 6)
        claim = app.engine.connect()
        tx = claim.begin()
        move(claim, ids[:3], from_=S.PENDING, to=S.SENDING, actor="dispatcher", now=NOW)  # holds row locks
        result: list[int] = []

        def skip() -> None:
            with app.engine.begin() as conn:
                result.extend(
                    move(
                        conn,
                        None,
                        from_=S.PENDING,
                        to=S.SKIPPED,
                        actor="cancel",
                        now=NOW,
                        where=[deliveries.c.run_id == run_id],
                    )
                )

        t = threading.Thread(target=skip)
        t.start()
        t.join(1.0)
        assert t.is_alive(), "the skip should wait for the claim's row locks"
        tx.commit()
        claim.close()
        t.join(10)
        assert sorted(result) == ids[3:]
        skipped = [e for e in _status_events(app) if e[2] == "skipped"]
        assert skipped == [(f"delivery:{i}", "pending", "skipped") for i in ids[3:]]
    finally:
        app.close()
