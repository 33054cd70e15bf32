"""Several workers on one PostgreSQL: a provider's `rate_per_second` holds across all of them
together (delivery/sharedrate.py), counted where it matters, at the provider: the local
Twilio-compatible server records when each request arrived. The pacers themselves are also
checked on SQLite, where the same code runs."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path

import pytest

from notifier.app import App
from notifier.channels.ratelimit import SharedBucket
from notifier.delivery.sharedrate import ClockMap, shared_bucket
from notifier.delivery.workers import Worker
from tests.support.pgserver import PgServer
from tests.support.scale import send_with_workers, sms_campaign
from tests.support.twilio_server import TwilioServer

RATE = 20
N = 200  # 10 s of sending at RATE


def test_four_workers_hold_one_rate_limit_together(
    tmp_path: Path, pg_server: PgServer, tserver: TwilioServer
) -> None:
    cfg = sms_campaign(tmp_path, pg_server.create_database("rate_four_workers"), tserver, N, rate=RATE)
    out = send_with_workers(cfg, tserver, 4)
    assert all(r.returncode == 0 for r in out.results), [r.stderr for r in out.results]
    assert out.statuses == {"sent": N} and set(out.accepted.values()) == {1} and len(out.accepted) == N
    sent_by = [json.loads(r.stdout)["sent"] for r in out.results]
    assert sum(sent_by) == N and sum(1 for s in sent_by if s) >= 2, sent_by  # the work was shared
    # Never above the rate in any second, but for one request: the limiter's slots are 1/rate
    # apart (at 99 % of it), yet a request reaches the server some milliseconds after its slot,
    # more on a loaded machine (a process's first request opens its connection), so one can
    # cross into the next second. Close to the rate while every worker was sending and
    # there was more to send than the rate allows (in the tail, the last batches leave workers
    # idle; at the start, workers still starting leave one alone, which idles between batches).
    assert out.busiest_second() <= RATE + 1, out.busiest_second()
    assert out.busiest_window() <= RATE + 2, out.busiest_window()
    # (The aim is 2 % over 60 s: bench/scale.py. Over these ~8 s on a loaded machine, slots given
    # up by a stalled worker weigh more; 3 % leaves room for that, a limit that is not shared, or
    # one worker alone, idle between its batches, is off by far more.)
    shared = out.rate_until(N * 4 // 5, since=out.all_sending_from)
    assert abs(shared - RATE) / RATE <= 0.03, (shared, out.rate)
    assert out.rate >= RATE * 0.95, out.rate


def test_two_pacers_on_one_database_share_the_rate(app: App) -> None:
    """Two workers' pacers of one provider (as two processes would hold them), on SQLite and
    PostgreSQL: together they keep to the rate; and a provider of another name has its own."""
    rate, seconds = 50.0, 2.0
    workers = [Worker(app.engine, timedelta(seconds=60)) for _ in range(2)]

    async def go() -> tuple[list[float], int]:
        buckets = [shared_bucket(w, "twilio", rate, 1.0) for w in workers]
        other = shared_bucket(workers[0], "smtp", rate, 1.0)
        stamps: list[float] = []
        others = 0
        t0 = time.monotonic()

        async def take(bucket: SharedBucket) -> None:
            while True:
                assert await bucket.acquire()
                stamps.append(time.monotonic() - t0)

        async def take_other() -> None:
            nonlocal others
            while True:
                await other.acquire()
                others += 1

        tasks = [asyncio.create_task(take(b)) for b in buckets for _ in range(10)]
        tasks.append(asyncio.create_task(take_other()))
        await asyncio.sleep(seconds)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return sorted(s for s in stamps if s < seconds), others

    stamps, others = asyncio.run(go())
    # Together never above the rate. How close to it they come is measured at the provider by
    # the test above; here (one process, a loaded machine gives up late slots) only that
    # neither is starved.
    assert rate * seconds * 0.5 <= len(stamps) <= rate * seconds + 1, len(stamps)
    assert max(sum(1 for s in stamps if a <= s < a + 1) for a in stamps) <= rate + 1
    assert others >= rate * seconds * 0.5  # the other provider's limit is its own


def test_the_database_clock_is_mapped_by_the_fastest_answer_of_the_last_seconds() -> None:
    """Local time = database time + 90 s; answers arrive 1-50 ms after the database read its
    clock. A late answer does not shift the map (its block would land on other workers'
    slots); an old fast answer is forgotten after the window, so the map follows drift."""
    clock = ClockMap(window=5.0)
    assert clock.add(100.020, 10.0) == pytest.approx(90.020)
    assert clock.add(101.001, 11.0) == pytest.approx(90.001)  # a faster answer: truer
    assert clock.add(102.050, 12.0) == pytest.approx(90.001)  # a late one changes nothing
    assert clock.add(107.000, 16.9) == pytest.approx(90.050)  # 101.001 is past the window
