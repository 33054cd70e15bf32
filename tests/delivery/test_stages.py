"""The dispatcher's stages on a real database: a lapsed lease gives its attempt back, stopping
is an event the loop obeys between batches, and cancelling a run while a dispatcher claims
audits exactly the rows the cancel moved (PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from notifier import runs
from notifier.app import App
from notifier.channels.registry import providers_for
from notifier.delivery import loop
from notifier.delivery.dispatch import Dispatcher
from notifier.delivery.jobs import Outcome
from notifier.delivery.transitions import move
from notifier.delivery.workers import Worker
from notifier.errors import LeaseLapsed, RenderError, Withdrawn
from notifier.rules.load import find_rule
from notifier.status import Channel
from notifier.status import DeliveryStatus as S
from notifier.storage.schema import audit_events, deliveries, run_messages
from notifier.storage.schema import runs as runs_table

from ..support.county import NOON, ON, approved_run, county

PACED = "[sending]\nbatch_size = 2\n[providers.outbox]\nrate_per_second = 1000\n"
"""Small batches under a rate limit, so the dispatcher's stages overlap (delivery/loop.py)."""


def _rows(app: App, run_id: int) -> list[Any]:
    with app.engine.connect() as conn:
        return conn.execute(
            sa.select(deliveries).where(deliveries.c.run_id == run_id).order_by(deliveries.c.id)
        ).all()


def _events(app: App, action: str) -> list[tuple[str, dict[str, Any]]]:
    with app.engine.connect() as conn:
        return [
            (s, json.loads(p))
            for s, p in conn.execute(
                sa.select(audit_events.c.subject, audit_events.c.payload)
                .where(audit_events.c.action == action)
                .order_by(audit_events.c.seq)
            )
        ]


def test_a_lapsed_lease_puts_the_row_back_without_using_an_attempt(tmp_path: Path, sqlite_url: str) -> None:
    """With max_attempts = 1 the old handling (a retryable error that kept the claim's count)
    failed the SMS and fell back to e-mail; nothing was ever handed to a provider."""
    app = county(tmp_path, sqlite_url, phones=2, extra="[sending]\nmax_attempts = 1\n")
    try:
        run_id = approved_run(app)
        clock, ticks = [NOON], [0.0]  # the dispatcher's wall clock; the worker's own (monotonic) one
        worker = Worker(app.engine, timedelta(seconds=60), clock=lambda: ticks[0])
        dispatcher = Dispatcher(app, providers_for(app.config), now=lambda: clock[0], worker=worker)
        stages = dispatcher.stages
        worker.heartbeat()
        claimed = stages.claimer.claim(run_id)
        assert [r.status for r in _rows(app, run_id)] == ["sending", "sending"]
        clock[0] = NOON + timedelta(seconds=50)
        ticks[0] = 50.0  # no renewal for 3/4 of the lease: must not send

        async def send_all() -> list[Outcome]:
            return list(await asyncio.gather(*(stages.sender.send(j) for j in claimed.jobs)))

        outcomes = asyncio.run(send_all())
        assert all(isinstance(o.error, LeaseLapsed) for o in outcomes)
        recorded = stages.recorder.record(outcomes, clock[0])
        assert (recorded.sent, recorded.failed, recorded.retried) == (0, 0, 0)
        rows = _rows(app, run_id)
        assert [(r.status, r.attempts, r.next_attempt_at, r.error_code) for r in rows] == [
            ("pending", 0, None, "lease"),
            ("pending", 0, None, "lease"),
        ]
        assert [(e["from"], e["to"]) for _, e in _events(app, "delivery.status")] == [
            ("pending", "sending"),
            ("pending", "sending"),
            ("sending", "pending"),
            ("sending", "pending"),
        ]
        assert _events(app, "delivery.fallback") == []
        # A worker whose lease holds sends them, each on its first (and only allowed) attempt.
        report = asyncio.run(Dispatcher(app, providers_for(app.config), now=lambda: NOON).run(run_id))
        assert (report.sent, report.failed, report.remaining) == (2, 0, 0)
        assert [(r.status, r.attempts) for r in _rows(app, run_id)] == [("delivered", 1), ("delivered", 1)]
    finally:
        app.close()


def test_a_message_given_back_after_another_worker_settled_its_row_leaves_no_answer_in_the_audit(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A batch given back (or whose lease lapsed) was never handed over: a row another worker
    settled meanwhile keeps that worker's status and audit, with no `delivery.send_result`
    claiming an answer that never came; the row still ours goes back to `pending`."""
    app = county(tmp_path, sqlite_url, phones=2)
    try:
        run_id = approved_run(app)
        dispatcher = Dispatcher(app, providers_for(app.config), now=lambda: NOON)
        stages = dispatcher.stages
        claimed = stages.claimer.claim(run_id)
        first, second = claimed.jobs
        with app.engine.begin() as conn:  # another worker took the row over and sent it
            move(
                conn,
                [first.id],
                from_=S.SENDING,
                to=S.DELIVERED,
                actor="worker-b",
                now=NOON,
                values={"claimed_by": "worker-b"},
            )
        error = Withdrawn("not sent: the worker stopped before this batch's turn")
        stages.recorder.record([Outcome(first, error=error), Outcome(second, error=error)], NOON)
        assert [(r.status, r.claimed_by == "worker-b", r.error_code) for r in _rows(app, run_id)] == [
            ("delivered", True, None),
            ("pending", False, "withdrawn"),
        ]
        assert _events(app, "delivery.send_result") == []
        assert [(s, e["from"], e["to"]) for s, e in _events(app, "delivery.status")][-2:] == [
            (f"delivery:{first.id}", "sending", "delivered"),
            (f"delivery:{second.id}", "sending", "pending"),
        ]
    finally:
        app.close()


def test_a_provider_taking_one_request_at_a_time_sends_in_order_beside_the_others(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A provider with concurrency 1 (the outbox always) gets its jobs one after the other in
    the batch's order, without a task each, while another provider's jobs of the same batch go
    at the same time: neither waits for the other."""
    extra = (
        '[providers.second]\nkind = "outbox"\ndir = "outbox2"\n'
        '[channels.sms]\nproviders = ["outbox", "second"]\n'
    )
    app = county(tmp_path, sqlite_url, phones=6, extra=extra)
    try:
        run_id = approved_run(app)
        chains = providers_for(app.config)
        stages = Dispatcher(app, chains, now=lambda: NOON).stages
        jobs = [
            dataclasses.replace(j, provider="second") if i % 2 else j
            for i, j in enumerate(stages.claimer.claim(run_id).jobs)
        ]
        spans: dict[str, list[tuple[int, float, float]]] = {"outbox": [], "second": []}
        for provider in chains[Channel.SMS].providers:
            assert provider.concurrency == 1
            original = provider.send

            async def timed(message: Any, name: str = provider.name, send: Any = original) -> Any:
                start = time.monotonic()
                await asyncio.sleep(0.02)
                spans[name].append((message.delivery_id, start, time.monotonic()))
                return await send(message)

            provider.send = timed  # type: ignore[method-assign]
        outcomes = asyncio.run(stages.sender.send_all(jobs))
        assert [o.job.id for o in outcomes] == [j.id for j in jobs]
        assert all(o.result is not None for o in outcomes)
        for name, spans_of in spans.items():
            assert [i for i, _, _ in spans_of] == [j.id for j in jobs if j.provider == name]
            assert all(a[2] <= b[1] for a, b in zip(spans_of, spans_of[1:], strict=False))  # one at a time
        first, second = spans["outbox"][0], spans["second"][0]
        assert second[1] < first[2]  # the second provider did not wait for the first one's turn
    finally:
        app.close()


def test_after_a_drain_a_turn_that_came_due_meanwhile_is_looked_at_and_a_gated_one_is_not(
    tmp_path: Path, sqlite_url: str
) -> None:
    """`until_idle` ends when what is left waits on a gate (a row due before the drain began and
    not claimed by it); a row whose turn came while a slow drain went on is claimed once more
    (the old rule, "due and not claimed: gated", ended with it pending); a later one is waited for."""
    app = county(tmp_path, sqlite_url, phones=2)
    try:
        run_id = approved_run(app)
        stages = Dispatcher(app, providers_for(app.config), now=lambda: NOON).stages
        first, second = (r.id for r in _rows(app, run_id))

        def due_at(at: Any, ids: list[int]) -> None:
            with app.engine.begin() as conn:
                conn.execute(deliveries.update().where(deliveries.c.id.in_(ids)).values(next_attempt_at=at))

        drained_from, now = NOON, NOON + timedelta(seconds=5)
        due_at(NOON - timedelta(seconds=1), [first, second])  # due before the drain: gated
        assert loop._wait(app, stages.reconciler, run_id, now, drained_from) is None
        due_at(NOON + timedelta(seconds=2), [second])  # came due during the drain
        assert loop._wait(app, stages.reconciler, run_id, now, drained_from) == pytest.approx(0.05)
        due_at(NOON + timedelta(seconds=8), [second])  # comes due later: waited for
        assert loop._wait(app, stages.reconciler, run_id, now, drained_from) == pytest.approx(3.0)
    finally:
        app.close()


def test_stopping_is_an_event_obeyed_between_batches(tmp_path: Path, sqlite_url: str) -> None:
    app = county(tmp_path, sqlite_url, phones=3, extra="[sending]\nbatch_size = 1\n")
    try:
        run_id = approved_run(app)
        stop = asyncio.Event()
        stop.set()
        dispatcher = Dispatcher(app, providers_for(app.config), now=lambda: NOON)
        report = asyncio.run(dispatcher.run(run_id, until_idle=True, stop=stop))
        assert (report.sent, report.remaining) == (0, 3)  # set before the start: nothing claimed

        async def stop_after_first_batch() -> Any:
            stop = asyncio.Event()
            return await dispatcher.run(run_id, until_idle=True, progress=lambda n: stop.set(), stop=stop)

        report = asyncio.run(stop_after_first_batch())
        assert (report.sent, report.remaining) == (1, 2)  # the batch in flight was recorded, no more
        assert sorted(r.status for r in _rows(app, run_id)) == ["delivered", "pending", "pending"]
    finally:
        app.close()


@pytest.mark.parametrize("cancelled", [False, True], ids=["stopped", "stopped-in-a-cancelled-run"])
def test_a_batch_claimed_ahead_is_given_back_when_the_worker_stops(
    tmp_path: Path, sqlite_url: str, cancelled: bool
) -> None:
    """Under a rate limit the next batch is claimed while one is sending; a stop that comes
    meanwhile gives it back: `pending` again, its attempt not used, audited as withdrawn, and
    sent by the next dispatch. Nothing is left `sending`. In a run cancelled meanwhile (the
    cancel skipped the pending rows, not the claimed ones) it is skipped, its notice key
    released: left `pending` there it would never be sent, nor sent by a re-created run."""
    app = county(
        tmp_path,
        sqlite_url,
        phones=3,
        extra=PACED,
    )
    try:
        run_id = approved_run(app)
        chains = providers_for(app.config)
        outbox = chains[Channel.SMS].providers[0]
        stop, original = asyncio.Event(), outbox.send

        async def send_then_stop(message: Any) -> Any:
            if not stop.is_set():
                stop.set()
                while [r.status for r in _rows(app, run_id)].count("sending") < 3:
                    await asyncio.sleep(0.01)  # the next batch is claimed ahead (in a thread)
                if cancelled:
                    runs.cancel_run(app, run_id, "clerk")
            return await original(message)

        outbox.send = send_then_stop  # type: ignore[method-assign]
        report = asyncio.run(Dispatcher(app, chains, now=lambda: NOON).run(run_id, stop=stop))
        assert report.sent == 2
        rows = _rows(app, run_id)
        last = ("skipped", 0, "withdrawn", None) if cancelled else ("pending", 0, "withdrawn", "k")
        assert [(r.status, r.attempts, r.error_code, r.notice_key and "k") for r in rows] == [
            ("delivered", 1, None, "k"),
            ("delivered", 1, None, "k"),
            last,
        ]
        moves = [
            (p["from"], p["to"], p.get("code"))
            for s, p in _events(app, "delivery.status")
            if s == f"delivery:{rows[2].id}"
        ]
        back = [("pending", "sending", None), ("sending", "pending", "withdrawn")]
        assert moves == back + ([("pending", "skipped", None)] if cancelled else [])
        if not cancelled:  # sent by the next dispatch, on its first attempt
            outbox.send = original  # type: ignore[method-assign]
            report = asyncio.run(Dispatcher(app, chains, now=lambda: NOON).run(run_id))
            assert (report.sent, report.remaining) == (1, 0)
            assert [(r.status, r.attempts) for r in _rows(app, run_id)][2] == ("delivered", 1)
    finally:
        app.close()


def test_a_cancel_while_a_batch_is_recorded_finishes_that_record_and_abandons_the_batch_sending(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A cancel (a shutdown that cannot wait) while the database thread records a batch's
    answers and the next batch is sending: close waits for that record (it was handed to the
    thread, which a cancel cannot stop), so the answered rows are `delivered`; the batch without
    answers is abandoned, its rows left `sending` for reconciliation as after a crash."""
    app = county(
        tmp_path,
        sqlite_url,
        phones=6,
        extra=PACED,
    )
    try:
        run_id = approved_run(app)
        chains = providers_for(app.config)
        outbox = chains[Channel.SMS].providers[0]
        original, sent = outbox.send, []
        path = str(app.engine.url.database)
        lock = sqlite3.connect(path, timeout=60, isolation_level=None)
        reader = sqlite3.connect(path, isolation_level=None)  # reads wait for no lock (WAL)

        def statuses() -> list[str]:
            q = "SELECT status FROM deliveries WHERE run_id = ? ORDER BY id"
            return [status for (status,) in reader.execute(q, (run_id,))]

        async def send(message: Any) -> Any:
            sent.append(message.delivery_id)
            if len(sent) == 2:  # the first batch's last message: its record will wait on a lock
                while statuses().count("sending") < 4:  # once the second batch is claimed ahead
                    await asyncio.sleep(0.01)
                lock.execute("BEGIN IMMEDIATE")
            elif len(sent) > 2:  # (the second batch never gets this far: no answer in any case)
                await asyncio.Event().wait()
            return await original(message)

        outbox.send = send  # type: ignore[method-assign]

        async def cancel_while_recording() -> None:
            task = asyncio.create_task(Dispatcher(app, chains, now=lambda: NOON).run(run_id))
            while len(sent) < 2:
                await asyncio.sleep(0.01)
            # the first batch's record waits for the lock, and so does the second batch's first
            # rate slot (the shared limit is a row of the database)
            await asyncio.sleep(0.3)
            assert statuses() == ["sending"] * 4 + ["pending"] * 2
            task.cancel()
            asyncio.get_running_loop().call_later(0.3, lock.execute, "COMMIT")
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(cancel_while_recording())
        lock.close()
        assert statuses() == ["delivered"] * 2 + ["sending"] * 2 + ["pending"] * 2
        reader.close()
        assert len(sent) == 2  # the abandoned batch never had its turn
    finally:
        app.close()


def test_a_send_failing_in_a_run_cancelled_meanwhile_falls_back_to_nothing(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The cancel skipped the run's pending rows: a fallback created after it would wait there,
    `pending` for ever, holding its notice key."""
    from notifier.errors import PermanentError

    app = county(tmp_path, sqlite_url, phones=1)
    try:
        run_id = approved_run(app)
        chains = providers_for(app.config)

        async def cancel_then_refuse(message: Any) -> Any:
            runs.cancel_run(app, run_id, "clerk")
            raise PermanentError("number not in service", "outbox", code="invalid")

        chains[Channel.SMS].providers[0].send = cancel_then_refuse  # type: ignore[method-assign]
        report = asyncio.run(Dispatcher(app, chains, now=lambda: NOON).run(run_id))
        assert report.failed == 1
        assert [(r.channel, r.status) for r in _rows(app, run_id)] == [("sms", "failed")]
        assert _events(app, "delivery.fallback") == []
    finally:
        app.close()


def test_runs_cancel_racing_a_claim_audits_only_the_rows_it_skipped_postgresql(
    pg_server: Any, tmp_path: Path
) -> None:
    """A dispatcher has claimed (locked, not yet committed) some of the run's rows when the run
    is cancelled: the cancel waits for them, skips only the rows still pending, and both the
    `delivery.status` events and `run.cancelled`'s count say exactly that."""
    app = county(tmp_path, pg_server.create_database("cancel_race"), phones=6)
    try:
        run_id = approved_run(app)
        ids = [r.id for r in _rows(app, run_id)]
        claim = app.engine.connect()
        tx = claim.begin()
        move(claim, ids[:2], from_=S.PENDING, to=S.SENDING, actor="dispatcher", now=NOON)  # holds row locks
        result: list[dict[str, Any]] = []
        cancel = threading.Thread(target=lambda: result.append(runs.cancel_run(app, run_id, "clerk")))
        cancel.start()
        cancel.join(1.0)
        assert cancel.is_alive(), "the cancel should wait for the claim's row locks"
        tx.commit()
        claim.close()
        cancel.join(20)
        assert result == [{"run": run_id, "status": "cancelled", "skipped": 4}]
        assert [(r.id, r.status) for r in _rows(app, run_id)] == [(i, "sending") for i in ids[:2]] + [
            (i, "skipped") for i in ids[2:]
        ]
        skipped = [
            (s, e["from"], e["to"]) for s, e in _events(app, "delivery.status") if e["to"] == "skipped"
        ]
        assert skipped == [(f"delivery:{i}", "pending", "skipped") for i in ids[2:]]
        assert [e for _, e in _events(app, "run.cancelled")] == [{"pending_skipped": 4}]
    finally:
        app.close()


def test_a_template_that_cannot_render_stops_the_run_and_never_falls_back(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Everyone here could be reached by e-mail, but the SMS template fails for one resident:
    that is the rule's fault, which no other channel mends. No run, no delivery, no message."""
    app = county(tmp_path, sqlite_url, phones=2)
    try:
        (tmp_path / "templates" / "farm_subsidy.sms.j2").write_text(
            "{{ 100 / (resident.farmland_mu - 2) }}\n", encoding="utf-8"
        )
        rule = find_rule("farm-subsidy-2026", app.config.rules_dir, app.dictionary, app.config.templates_dir)
        with pytest.raises(RenderError, match="no run was created"):
            runs.create_run(app, rule, ON, "clerk")
        with app.engine.connect() as conn:
            counts = [
                conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in (runs_table, deliveries, run_messages)
            ]
        assert counts == [0, 0, 0] and _events(app, "delivery.fallback") == []
    finally:
        app.close()
