"""`rules preview --all` counts in the database (rules/counting.py): the same counts and channels
as each rule's audience, split over threads or not, and a failing part fails like one part."""

from __future__ import annotations

import os
import threading
import time
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from notifier.app import App
from notifier.audience import evaluate_many
from notifier.residents.importer import import_records, import_residents
from notifier.rules.counting import count_many
from notifier.rules.load import load_rules, rule_files
from notifier.rules.model import Rule
from notifier.status import Channel
from notifier.storage.schema import opt_outs, records
from tests.support.campaign import sample_register
from tests.support.pgserver import PgServer
from tests.support.project import REPO, write_config


def _register(app: App, tmp_path: Path) -> dict[str, Rule]:
    """600 sample residents with grants; every fifth phone opted out, a few residents left, and
    the sample rules offering their channels in three different orders."""
    people, grants = sample_register(tmp_path, 600)
    import_residents(app, people)
    import_records(app, "grants", grants)
    t = app.residents
    with app.engine.begin() as conn:
        phones = conn.execute(
            sa.select(t.c.phone).where(t.c.phone.is_not(None)).distinct().order_by(t.c.phone)
        ).scalars()
        now = datetime.now(timezone.utc)
        conn.execute(
            opt_outs.insert(), [{"phone": p, "source": "test", "created_at": now} for p in phones][::5]
        )
        ids = conn.execute(sa.select(t.c.resident_id).order_by(t.c.resident_id)).scalars().all()
        conn.execute(t.update().where(t.c.resident_id.in_(ids[::40])).values(left_at=now))
    rules, problems = load_rules(rule_files(REPO / "rules"), app.dictionary, REPO / "templates")
    assert problems == []
    orders = [[Channel.LETTER, Channel.SMS], [Channel.EMAIL, Channel.LETTER, Channel.SMS], None]
    for rule, order in zip(rules.values(), orders, strict=True):
        if order is not None:
            rule.channels[:] = order
    return rules


@pytest.mark.parametrize("on", [date(2026, 3, 2), date(2026, 12, 5)])
def test_counts_and_channels_equal_the_audiences(app: App, tmp_path: Path, on: date) -> None:
    rules = _register(app, tmp_path)
    many = evaluate_many(app, rules.values(), on)
    for parts in (1, 3):  # 3: three threads over rowid ranges on SQLite; PostgreSQL scans in one statement
        counted = count_many(app, rules.values(), on, parts=parts)
        assert set(counted) == set(rules)
        for rule_id, aud in many.items():
            assert (counted[rule_id].counts, counted[rule_id].by_channel) == (aud.counts, aud.by_channel()), (
                rule_id,
                parts,
            )
    assert all(a.counts["match"] and a.counts["review"] for a in many.values())
    assert len({tuple(a.by_channel().values()) for a in many.values()}) == 3
    assert sum(many["farm-subsidy-2026"].counts.values()) == 600 - 15  # those who left are not counted


def test_a_failing_part_fails_as_one_part_and_leaves_no_thread(tmp_path: Path) -> None:
    """The grants of the register's last third are corrupt (not JSON): reading them fails in
    that part only; the split raises the same error as one scan, and no thread is left."""
    app = App.open(write_config(tmp_path, f"sqlite:///{tmp_path / 'n.db'}"))
    try:
        rules = _register(app, tmp_path)
        on = date(2026, 3, 2)
        with app.engine.begin() as conn:
            last = conn.exec_driver_sql("SELECT max(rowid) FROM residents").scalar_one()
            conn.execute(
                records.update()
                .where(
                    records.c.resident_id.in_(
                        sa.text("SELECT resident_id FROM residents WHERE rowid > :cut").bindparams(
                            cut=last * 2 // 3
                        )
                    )
                )
                .values(data=sa.literal_column("'not json'"))
            )
        errors = []
        before = threading.active_count()
        for parts in (1, 3):
            with pytest.raises(sa.exc.OperationalError) as got:
                count_many(app, rules.values(), on, parts=parts)
            errors.append((type(got.value.orig), str(got.value.orig)))
            assert threading.active_count() == before
        assert errors[0] == errors[1] and "malformed JSON" in errors[0][1]
    finally:
        app.close()


def test_a_writer_holding_the_lock_is_not_waited_for(tmp_path: Path) -> None:
    """Split parts align their snapshots under a short write lock; while a writer holds it the
    count runs in one part at once, and sees nothing of the open transaction."""
    app = App.open(write_config(tmp_path, f"sqlite:///{tmp_path / 'n.db'}"))
    try:
        rules = _register(app, tmp_path)
        on = date(2026, 3, 2)
        before = count_many(app, rules.values(), on, parts=2)
        with app.engine.begin() as conn:  # BEGIN IMMEDIATE: holds the write lock until the end
            now = datetime.now(timezone.utc)
            conn.execute(app.residents.insert().values(resident_id="z", created_at=now, updated_at=now))
            t0 = time.perf_counter()
            during = count_many(app, rules.values(), on, parts=2)
            assert time.perf_counter() - t0 < 5
        assert during == before
        after = count_many(app, rules.values(), on, parts=2)
        assert [sum(c.counts.values()) for c in after.values()] == [
            sum(c.counts.values()) + 1 for c in before.values()
        ]
    finally:
        app.close()


def test_split_only_with_two_cpus_and_a_large_register(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from notifier.rules import counting

    _register(app, tmp_path)
    with app.reader.connect() as conn:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
        assert counting._cuts(conn, app.residents, None)[1] == []  # 600 residents: one part
        monkeypatch.setattr(counting, "SPLIT_FROM", 500)
        assert len(counting._cuts(conn, app.residents, None)[1]) == 1  # two parts
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
        assert counting._cuts(conn, app.residents, None)[1] == []  # one CPU: one part


def test_postgresql_scans_in_parallel_without_correlated_subplans(
    pg_server: PgServer, tmp_path: Path
) -> None:
    """On PostgreSQL the related-records conditions and the opt-out list are joined columns, so
    nothing makes the scan parallel-restricted and the planner gives it parallel workers."""
    from notifier.rules import counting
    from notifier.rules.compile import RecordFlags, compile_rule
    from notifier.storage.db import scan_settings

    app = App.open(write_config(tmp_path, pg_server.create_database("counting_plan")))
    try:
        rules = _register(app, tmp_path)
        flags = RecordFlags()
        compiled = [
            compile_rule(r, app.dictionary, app.residents, date(2026, 3, 2), flags) for r in rules.values()
        ]
        grouped = counting.statements(app.residents, compiled, [], flags)[1]
        with app.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        with app.reader.connect() as conn, conn.begin():
            scan_settings(conn)
            for setting in ("min_parallel_table_scan_size", "parallel_setup_cost", "parallel_tuple_cost"):
                conn.exec_driver_sql(f"SET LOCAL {setting} = 0")  # 600 residents: too few to pay otherwise
            sql = grouped.compile(conn, compile_kwargs={"literal_binds": True})
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))
        assert flags.tests and "SubPlan" not in plan and "Parallel Seq Scan on residents" in plan, plan
    finally:
        app.close()
