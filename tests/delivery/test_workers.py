"""Which `sending` rows a restarted sender may settle: only those of workers that are gone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from notifier.app import App
from notifier.delivery.workers import Worker, new_worker_id
from tests.support.crash import dead_pid

T0 = datetime(2026, 4, 1, 4, 0, tzinfo=timezone.utc)
TTL = timedelta(seconds=120)


def test_live_workers_are_left_alone_and_gone_ones_are_recognised(app: App) -> None:
    me = Worker(app.engine, TTL)
    live_elsewhere = Worker(app.engine, TTL, "other-host:4242:aaaaaaaa")
    silent_elsewhere = Worker(app.engine, TTL, "other-host:4343:bbbbbbbb")
    host = me.id.split(":")[0]
    killed_here = Worker(app.engine, TTL, f"{host}:{dead_pid()}:cccccccc")  # lease still valid, process gone
    stopped = Worker(app.engine, TTL, "other-host:4444:dddddddd")
    never_seen = "other-host:4545:eeeeeeee"  # claimed, never held a lease
    for w in (me, live_elsewhere, killed_here, stopped):
        w.heartbeat(T0)
    silent_elsewhere.heartbeat(T0 - 2 * TTL)
    stopped.stop()
    claimers = {me.id, live_elsewhere.id, silent_elsewhere.id, killed_here.id, stopped.id, never_seen}
    with app.engine.connect() as conn:
        dead = me.dead_claimers(conn, claimers, T0 + timedelta(seconds=5))
    # Its own rows count as abandoned: a worker only asks between batches.
    assert dead == claimers - {live_elsewhere.id}
    with app.engine.connect() as conn:  # once the live worker stops renewing, its lease lapses
        assert live_elsewhere.id in me.dead_claimers(
            conn, {live_elsewhere.id}, T0 + TTL + timedelta(seconds=1)
        )


def test_worker_ids_fit_the_lease_table() -> None:
    assert len("worker:" + new_worker_id()) <= 64
