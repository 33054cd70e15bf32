"""What the dispatcher's stages rely on in transitions.py beyond the basics: per-row audit
detail in one statement (the claim), moves that set different columns in one call
(reconciliation), and a reason that is cleared only when a move says so (a send's answer)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from notifier.app import App
from notifier.delivery.transitions import Move, move, move_each
from notifier.status import DeliveryStatus as S
from notifier.storage.schema import audit_events, deliveries

from ..support.rows import NOW, bare_run


def _deliveries(app: App, n: int) -> list[int]:
    return bare_run(app, n, reason="an earlier problem")[1]


def _payloads(app: App) -> list[dict[str, Any]]:
    with app.engine.connect() as conn:
        return [
            json.loads(p)
            for p in conn.execute(
                sa.select(audit_events.c.payload)
                .where(audit_events.c.action == "delivery.status")
                .order_by(audit_events.c.seq)
            ).scalars()
        ]


def _row(app: App, delivery_id: int) -> Any:
    with app.engine.connect() as conn:
        return conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).one()


def test_move_audits_each_row_with_its_own_detail(app: App) -> None:
    ids = _deliveries(app, 3)
    with app.engine.begin() as conn:
        moved = move(
            conn,
            ids,
            from_=S.PENDING,
            to=S.SENDING,
            actor="dispatcher",
            now=NOW,
            values={"attempts": deliveries.c.attempts + 1},
            payload={"batch": 1},
            per_row={i: {"attempt": 1, "sha256": f"h{i}"} for i in ids[:2]},
        )
    assert moved == ids
    assert [(p["attempt"], p["sha256"], p["batch"]) for p in _payloads(app)[:2]] == [
        (1, f"h{ids[0]}", 1),
        (1, f"h{ids[1]}", 1),
    ]
    assert "attempt" not in _payloads(app)[2] and _payloads(app)[2]["batch"] == 1
    assert _row(app, ids[2]).attempts == 1


def test_move_each_applies_moves_that_set_different_columns(app: App) -> None:
    ids = _deliveries(app, 2)
    with app.engine.begin() as conn:
        move(conn, ids, from_=S.PENDING, to=S.SENDING, actor="t", now=NOW)
        applied, _ = move_each(
            conn,
            [
                Move(ids[0], S.SENT, {"provider_message_id": "SM1", "sent_at": NOW}, reason="found"),
                Move(ids[1], S.PENDING, reason="never taken"),
            ],
            from_=S.SENDING,
            actor="t",
            now=NOW,
        )
    assert [m.id for m in applied] == ids
    first, second = _row(app, ids[0]), _row(app, ids[1])
    assert (first.status, first.provider_message_id, first.reason) == ("sent", "SM1", "found")
    assert (second.status, second.provider_message_id, second.reason) == ("pending", None, "never taken")


def test_a_reason_is_kept_unless_a_move_sets_it(app: App) -> None:
    ids = _deliveries(app, 2)
    with app.engine.begin() as conn:
        move(conn, ids, from_=S.PENDING, to=S.SENDING, actor="t", now=NOW)
        move_each(conn, [Move(ids[0], S.SENT)], from_=S.SENDING, actor="t", now=NOW)
        move_each(conn, [Move(ids[1], S.SENT, {"reason": None})], from_=S.SENDING, actor="t", now=NOW)
    assert (_row(app, ids[0]).reason, _row(app, ids[1]).reason) == ("an earlier problem", None)
