"""Which `sending` rows a restarted sender may settle: only those of workers that are gone, their
leases judged by the database's clock (on SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from datetime import timedelta

from notifier.app import App
from notifier.delivery.workers import Worker, new_worker_id
from tests.support.crash import dead_pid

TTL = timedelta(seconds=120)


def test_live_workers_are_left_alone_and_gone_ones_are_recognised(app: App) -> None:
    me = Worker(app.engine, TTL)
    live_elsewhere = Worker(app.engine, TTL, "other-host:4242:aaaaaaaa")
    silent_elsewhere = Worker(
        app.engine, timedelta(seconds=0.5), "other-host:4343:bbbbbbbb"
    )  # stops renewing
    host = me.id.split(":")[0]
    killed_here = Worker(app.engine, TTL, f"{host}:{dead_pid()}:cccccccc")  # lease still valid, process gone
    stopped = Worker(app.engine, TTL, "other-host:4444:dddddddd")
    never_seen = "other-host:4545:eeeeeeee"  # claimed, never held a lease
    for w in (me, live_elsewhere, silent_elsewhere, killed_here, stopped):
        w.heartbeat()
    stopped.stop()
    claimers = {me.id, live_elsewhere.id, silent_elsewhere.id, killed_here.id, stopped.id, never_seen}
    with app.engine.connect() as conn:  # the silent worker's lease has not run out yet
        assert me.dead_claimers(conn, claimers) == claimers - {live_elsewhere.id, silent_elsewhere.id}
    time.sleep(0.7)
    with app.engine.connect() as conn:
        dead = me.dead_claimers(conn, claimers)
    # Its own rows count as abandoned: a worker only asks between batches.
    assert dead == claimers - {live_elsewhere.id}


def test_a_worker_judges_its_own_margin_on_its_own_monotonic_clock(app: App) -> None:
    ticks = [1000.0]
    w = Worker(app.engine, TTL, clock=lambda: ticks[0])
    assert not w.fresh()  # never renewed
    w.heartbeat()
    ticks[0] += 89
    assert w.fresh()
    ticks[0] += 1  # 3/4 of the lease since it asked for the renewal: no more sending
    assert not w.fresh()
    w.heartbeat()
    assert w.fresh()


def test_worker_ids_fit_the_lease_table() -> None:
    assert len("worker:" + new_worker_id()) <= 64
