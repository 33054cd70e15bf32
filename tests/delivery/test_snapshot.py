"""RunSnapshot: what run creation stores reads back typed, old snapshots (missing keys) still
load, and the one publication-window gate answers the dispatcher, `send`'s reasons and
run creation alike."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from notifier import runs
from notifier.rules.load import find_rule
from notifier.runs import Gate, GateState, PublicationWindow, RunSnapshot
from notifier.runs.snapshot import ItemSnapshot
from notifier.status import Channel
from notifier.storage.schema import runs as runs_table

from ..support.county import approved_run, county


def test_what_a_run_stores_reads_back_the_same(tmp_path: Path, sqlite_url: str) -> None:
    app = county(tmp_path, sqlite_url)
    try:
        run_id = approved_run(app)
        with app.engine.connect() as conn:
            stored = conn.execute(
                sa.select(runs_table.c.snapshot).where(runs_table.c.id == run_id)
            ).scalar_one()
        snap = RunSnapshot.from_json(stored)
        assert snap.to_json() == stored
        assert snap.channels == (Channel.SMS, Channel.EMAIL, Channel.LETTER)
        assert snap.item.title == "2026年耕地地力保护补贴发放公示"
        assert snap.item.window == PublicationWindow(date(2026, 1, 1), date(2027, 12, 31))
        assert snap.params["subsidy_per_mu"]["value"] == "110" and not snap.restricted
        assert runs.show_run(app, run_id)["params"] == stored["params"]
    finally:
        app.close()


@pytest.mark.parametrize(
    "stored",
    [
        None,
        {},
        {"item": {"title": "旧"}},  # a snapshot of an older version: no window, no channels
        {"item": {"title": "旧", "publish_from": None, "publish_until": ""}, "channels": ["sms"]},
    ],
)
def test_old_snapshots_load_with_defaults(stored: dict[str, object] | None) -> None:
    snap = RunSnapshot.from_json(stored)
    assert snap.item.window == PublicationWindow()
    assert snap.disclosure == "public" and snap.params == {}
    assert snap.gate(date(2026, 4, 1)) == Gate(GateState.OPEN)


def _snap(start: date | None, until: date | None, disclosure: str = "public") -> RunSnapshot:
    return RunSnapshot(item=ItemSnapshot(window=PublicationWindow(start, until)), disclosure=disclosure)


@pytest.mark.parametrize(
    "snap, day, state, reason",
    [
        (_snap(date(2026, 3, 1), date(2026, 3, 31)), date(2026, 3, 1), GateState.OPEN, ""),
        (_snap(date(2026, 3, 1), date(2026, 3, 31)), date(2026, 3, 31), GateState.OPEN, ""),
        (_snap(None, None), date(1999, 1, 1), GateState.OPEN, ""),
        (
            _snap(date(2026, 3, 1), None),
            date(2026, 2, 28),
            GateState.WAITING,
            "the item is published from 2026-03-01",
        ),
        (
            _snap(None, date(2026, 3, 31)),
            date(2026, 4, 1),
            GateState.CLOSED,
            "publication window ended on 2026-03-31",
        ),
        (_snap(None, None, "restricted"), date(2026, 4, 1), GateState.CLOSED, "item is restricted"),
    ],
)
def test_the_gate(snap: RunSnapshot, day: date, state: GateState, reason: str) -> None:
    gate = snap.gate(day)
    assert (gate.state, gate.reason) == (state, reason)


def test_run_creation_asks_the_same_window(tmp_path: Path, sqlite_url: str) -> None:
    app = county(tmp_path, sqlite_url)
    try:
        farm = find_rule("farm-subsidy-2026", app.config.rules_dir, app.dictionary, app.config.templates_dir)
        assert runs.window_problem(farm, date(2026, 1, 1)) is None
        assert runs.window_problem(farm, date(2028, 1, 1)) == (
            "2028-01-01 is outside the publication window of 'farm-subsidy-2026' (2026-01-01 to 2027-12-31)"
        )
        assert PublicationWindow.of(farm.item).contains(date(2027, 12, 31))
    finally:
        app.close()
