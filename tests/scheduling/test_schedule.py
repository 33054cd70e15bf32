"""Scheduled notices: approval bound to the rule version, one run per firing, leases."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa

from notifier.app import App
from notifier.errors import StateError
from notifier.rules.model import Rule
from notifier.scheduling import lease
from notifier.scheduling.approval import approve_rule
from notifier.scheduling.firing import fire
from notifier.scheduling.scheduler import NoticeScheduler, due_time, next_fire
from notifier.storage.schema import firings, runs
from tests.support.campaign import rule
from tests.support.project import write_config

AT = datetime(2026, 4, 1, 1, 0, tzinfo=timezone.utc)  # 09:00 in Asia/Shanghai


def approve(app: App, rule_id: str = "farm-subsidy-2026") -> None:
    approve_rule(app, rule(app, rule_id), "reviewer1")
    approve_rule(app, rule(app, rule_id), "reviewer2")


def all_runs(app: App) -> Sequence[sa.Row[Any]]:
    with app.engine.connect() as conn:
        return conn.execute(sa.select(runs).order_by(runs.c.id)).all()


def test_firing_is_unique_and_needs_an_approved_version(papp: App, tmp_path: Path) -> None:
    r = rule(papp)
    assert fire(papp, r, AT, now=AT).status == "unapproved" and all_runs(papp) == []
    approve(papp)
    assert fire(papp, r, AT, now=AT).status == "duplicate"  # that firing is spent, whatever happened
    later = AT + timedelta(days=1)
    result = fire(papp, r, later, now=later)
    assert result.status == "created" and result.run is not None
    (run,) = all_runs(papp)
    assert run.status == "approved" and run.created_by == "scheduler"
    assert fire(papp, r, later, now=later + timedelta(minutes=5)).status == "duplicate"
    assert len(all_runs(papp)) == 1
    # Editing the rule (a template here) makes a new version: no longer approved.
    tpl = tmp_path / "templates" / "farm_subsidy.sms.j2"
    tpl.write_text(tpl.read_text(encoding="utf-8").replace("回TD退订", "回复TD退订"), encoding="utf-8")
    edited = rule(papp)
    assert edited.version != r.version
    assert fire(papp, edited, AT + timedelta(days=2), now=AT + timedelta(days=2)).status == "unapproved"


def test_missed_and_outside_window(papp: App) -> None:
    approve(papp)
    r = rule(papp)
    assert fire(papp, r, AT, now=AT + timedelta(hours=2)).status == "missed"
    early = datetime(2025, 12, 1, 1, tzinfo=timezone.utc)
    assert fire(papp, r, early, now=early).status == "outside_window"
    assert all_runs(papp) == []


def test_rule_approval_levels(papp: App) -> None:
    r = rule(papp)
    approve_rule(papp, r, "a")
    with pytest.raises(StateError, match="different person"):
        approve_rule(papp, r, "a")
    assert approve_rule(papp, r, "b").approved
    with pytest.raises(StateError, match="already approved"):
        approve_rule(papp, r, "c")


def test_per_run_approval_leaves_runs_waiting(papp: App) -> None:
    papp.config.approval = replace(papp.config.approval, per_run=True)
    approve(papp)
    result = fire(papp, rule(papp), AT, now=AT)
    assert result.status == "created" and all_runs(papp)[0].status == "awaiting_approval"


def test_due_and_next_times() -> None:
    from types import SimpleNamespace
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Asia/Shanghai")
    monthly = cast(Rule, SimpleNamespace(schedule={"cron": "0 9 5 * *"}))
    now = datetime(2026, 3, 5, 1, 30, tzinfo=timezone.utc)  # 09:30 local on the 5th
    assert due_time(monthly, tz, now, timedelta(hours=1)) == datetime(2026, 3, 5, 9, 0, tzinfo=tz)
    assert due_time(monthly, tz, now, timedelta(minutes=10)) is None
    assert next_fire(monthly, tz, now) == datetime(2026, 4, 5, 9, 0, tzinfo=tz)


def test_lease_has_one_holder_and_expires(sqlite_url: str, tmp_path: Path) -> None:
    app = App.open(write_config(tmp_path, sqlite_url))
    ttl = timedelta(seconds=0.6)  # judged by the database's clock: real time passes here
    assert lease.acquire(app.engine, "scheduler", "a", ttl)
    assert not lease.acquire(app.engine, "scheduler", "b", ttl)
    time.sleep(0.4)
    assert lease.acquire(app.engine, "scheduler", "a", ttl)  # renewed
    time.sleep(0.4)
    assert not lease.acquire(app.engine, "scheduler", "b", ttl)  # 0.8 s after a took it: renewed
    time.sleep(0.7)
    assert lease.acquire(app.engine, "scheduler", "b", ttl)  # a died
    app.close()


def test_apscheduler_fires_a_notice_once(papp: App, tmp_path: Path) -> None:
    """A notice scheduled two seconds ahead fires once through the real APScheduler job store."""
    soon = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2)
    path = tmp_path / "rules" / "farm-subsidy-2026.yaml"
    local = soon.astimezone(papp.config.timezone).replace(tzinfo=None)
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "schedule: {once: 2026-04-01T09:00}", f"schedule: {{once: {local.isoformat()}}}"
        ),
        encoding="utf-8",
    )
    approve(papp)

    async def main() -> None:
        sched = NoticeScheduler(papp, "test")
        sched.start()
        try:
            # Wait for the firing (up to 30 s on a loaded machine), then a little longer for any second one.
            for _ in range(300):
                await asyncio.sleep(0.1)
                with papp.engine.connect() as conn:
                    if conn.execute(
                        sa.select(firings.c.status).where(firings.c.rule_id == "farm-subsidy-2026")
                    ).scalar():
                        break
            await asyncio.sleep(1.5)
        finally:
            sched.shutdown()

    asyncio.run(main())
    with papp.engine.connect() as conn:
        rows = conn.execute(sa.select(firings).where(firings.c.rule_id == "farm-subsidy-2026")).all()
    assert [r.status for r in rows] == ["created"]
    assert len(all_runs(papp)) == 1 and all_runs(papp)[0].status == "approved"


def test_a_firing_missed_beyond_the_grace_period_is_recorded(papp: App, tmp_path: Path) -> None:
    papp.config.schedule = replace(papp.config.schedule, misfire_grace_seconds=1)
    past = (
        (datetime.now(timezone.utc) - timedelta(seconds=30))
        .astimezone(papp.config.timezone)
        .replace(microsecond=0)
    )
    path = tmp_path / "rules" / "farm-subsidy-2026.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "schedule: {once: 2026-04-01T09:00}",
            f"schedule: {{once: {past.replace(tzinfo=None).isoformat()}}}",
        ),
        encoding="utf-8",
    )
    approve(papp)

    async def main() -> None:
        sched = NoticeScheduler(papp, "missed")
        sched.start()
        try:
            await asyncio.sleep(2)
        finally:
            sched.shutdown()

    asyncio.run(main())
    with papp.engine.connect() as conn:
        rows = {r.rule_id: r for r in conn.execute(sa.select(firings))}
    # The sample housing-repair notice (once, 2026-03-02) is long past too: also recorded as missed.
    assert {k: (r.status, r.run_id) for k, r in rows.items()} == {
        "farm-subsidy-2026": ("missed", None),
        "rural-housing-repair-2026": ("missed", None),
    }
    assert all_runs(papp) == []
