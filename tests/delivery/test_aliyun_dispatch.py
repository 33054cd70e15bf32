"""The dispatcher sending a real run through the local Aliyun server with the rule's registered
template: variables rendered at run creation and stored, batches of up to 100 numbers, each
delivery settling on its own, and an account-level refusal pausing Aliyun for everyone while
the next provider takes over (residents never failed for it)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from notifier import runs
from notifier.app import App
from notifier.channels.registry import providers_for
from notifier.delivery.dispatch import Dispatcher
from notifier.residents.importer import import_residents
from notifier.storage.schema import deliveries, run_messages
from notifier.web import prometheus_text

from ..support.aliyun_project import CODE, SIGN, aliyun_project
from ..support.aliyun_server import AliyunServer, Fault
from ..support.campaign import NOON, ON, approve_all, audit_rows, rule


@pytest.fixture
def server() -> Iterator[AliyunServer]:
    with AliyunServer() as s:
        yield s


def approved(cfg: Path) -> tuple[App, int]:
    app = App.open(cfg)
    import_residents(app, cfg.parent / "p.csv")
    run_id = runs.create_run(app, rule(app), ON, "clerk").run
    approve_all(app, run_id)
    return app, run_id


def send(app: App, run_id: int) -> Any:
    return asyncio.run(
        Dispatcher(app, providers_for(app.config), now=lambda: NOON).run(run_id, until_idle=True)
    )


def rows(app: App, run_id: int) -> list[Any]:
    with app.engine.connect() as conn:
        return list(
            conn.execute(sa.select(deliveries).where(deliveries.c.run_id == run_id).order_by(deliveries.c.id))
        )


def test_the_variables_are_rendered_and_stored_at_run_creation(
    tmp_path: Path, db_url: str, server: AliyunServer
) -> None:
    app, run_id = approved(aliyun_project(tmp_path, db_url, server, people=2))
    try:
        with app.engine.connect() as conn:
            stored = conn.execute(
                sa.select(run_messages.c.resident_id, run_messages.c.body, run_messages.c.templates)
                .where(run_messages.c.run_id == run_id, run_messages.c.channel == "sms")
                .order_by(run_messages.c.resident_id)
            ).all()
        first = stored[0]
        templates = first.templates if isinstance(first.templates, dict) else json.loads(first.templates)
        assert templates["aliyun"]["code"] == CODE and templates["aliyun"]["sign"] == SIGN
        assert dict(templates["aliyun"]["params"]) == {
            "name": "李1",
            "mu": "2",
            "rate": "¥110.00",
            "amount": "¥220.00",
        }
        send(app, run_id)
        by_phone = {m.phone: m for m in server.messages}
        assert by_phone["13800000001"].content == first.body  # exactly what the approvers saw
    finally:
        app.close()


def test_a_run_is_sent_in_batches_and_each_delivery_settles_on_its_own(
    tmp_path: Path, sqlite_url: str, server: AliyunServer
) -> None:
    app, run_id = approved(aliyun_project(tmp_path, sqlite_url, server, people=150))
    try:
        server.number_faults["13800000007"] = Fault.refuse("isv.MOBILE_NUMBER_ILLEGAL")
        report = send(app, run_id)
        got = [r for r in rows(app, run_id) if r.channel == "sms"]
        assert report.by_channel == {"sms": 149, "letter": 1} and report.failed == 1  # falls back to a letter
        batches = sorted(n for action, n, _ in server.calls if action == "SendBatchSms")
        assert batches[-1] == 100 and sum(batches) == 150  # one number refused the whole of its call...
        singles = [c for c in server.calls if c[0] == "SendSms"]
        assert len(singles) == 100  # ...which was sent again number by number
        failed = [r for r in got if r.status == "failed"]
        assert [r.recipient for r in failed] == ["+8613800000007"]
        assert failed[0].error_code == "isv.MOBILE_NUMBER_ILLEGAL"
        sent = [r for r in got if r.status == "sent"]
        assert len({r.provider_message_id for r in sent}) == 149
        assert server.accepted_by_number().most_common(1)[0][1] == 1  # nobody twice
        moved = {s for s, p in audit_rows(app, "delivery.status") if p.get("to") == "sent"}
        assert moved >= {f"delivery:{r.id}" for r in sent} and len(moved) == 150  # and the letter
    finally:
        app.close()


def test_an_account_refusal_pauses_aliyun_and_the_next_provider_takes_over(
    tmp_path: Path, sqlite_url: str, server: AliyunServer
) -> None:
    cfg = aliyun_project(tmp_path, sqlite_url, server, people=5, providers='["aliyun", "outbox"]')
    app, run_id = approved(cfg)
    try:
        server.fail_next(Fault.refuse("isv.AMOUNT_NOT_ENOUGH"))
        report = send(app, run_id)
        got = rows(app, run_id)
        assert report.failed == 0 and report.by_channel == {"sms": 5}
        assert {(r.status, r.provider, r.attempts) for r in got} == {("delivered", "outbox", 1)}
        assert server.messages == [] and len(server.calls) == 1  # tried once, then left alone
        [(subject, paused)] = audit_rows(app, "provider.paused")
        assert subject == "channel:sms" and paused["provider"] == "aliyun" and paused["next"] == "outbox"
        assert paused["code"] == "isv.AMOUNT_NOT_ENOUGH" and "余额不足" in paused["reason"]
        metrics = prometheus_text(app)
        assert 'notifier_provider_paused_until_timestamp_seconds{provider="aliyun"}' in metrics
    finally:
        app.close()


def test_with_no_other_provider_the_channel_waits_and_nobody_fails(
    tmp_path: Path, sqlite_url: str, server: AliyunServer
) -> None:
    app, run_id = approved(aliyun_project(tmp_path, sqlite_url, server, people=3))
    try:
        server.fail_next(Fault.refuse("isv.DAY_LIMIT_CONTROL"))
        report = send(app, run_id)
        assert report.failed == 0 and report.sent == 0 and report.remaining == 3
        assert {(r.status, r.attempts, r.error_code) for r in rows(app, run_id)} == {
            ("pending", 0, "isv.DAY_LIMIT_CONTROL")
        }
        assert len(server.calls) == 1  # the paused provider is not hammered
    finally:
        app.close()


def test_a_timed_out_batch_is_reconciled_number_by_number(
    tmp_path: Path, sqlite_url: str, server: AliyunServer
) -> None:
    app, run_id = approved(aliyun_project(tmp_path, sqlite_url, server, people=4, aliyun={"timeout": 0.5}))
    try:
        server.fail_next(Fault.slow(2.0))  # Aliyun takes the batch, the answer comes too late
        report = send(app, run_id)
        assert report.failed == 0 and report.reconciled == 4 and report.sent == 0
        assert {r.status for r in rows(app, run_id)} == {"sent"}
        assert server.accepted_by_number().most_common(1)[0][1] == 1  # looked up, never resent
    finally:
        app.close()


def test_several_notices_to_one_number_are_spaced_not_refused(
    tmp_path: Path, sqlite_url: str, server: AliyunServer
) -> None:
    cfg = aliyun_project(tmp_path, sqlite_url, server, people=4, aliyun={"per_number_seconds": 0.4})
    roster = (tmp_path / "p.csv").read_text(encoding="utf-8")
    # a household: three residents share one number (the fourth has its own)
    for i in (2, 3):
        roster = roster.replace(f"1380000{i:04d}", "13800000001")
    (tmp_path / "p.csv").write_text(roster, encoding="utf-8")
    app, run_id = approved(cfg)
    try:
        started = time.monotonic()
        clock = lambda: NOON + timedelta(seconds=time.monotonic() - started)  # noqa: E731
        report = asyncio.run(
            Dispatcher(app, providers_for(app.config), now=clock).run(run_id, until_idle=True)
        )
        assert report.sent == 4 and report.failed == 0 and report.retried == 0
        times = sorted(m.sent for m in server.messages if m.phone == "13800000001")
        assert len(times) == 3
        gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
        assert min(gaps) >= 0.35, gaps  # one at a time, 0.4 s apart
        assert all(code == "OK" for *_, code in server.calls)
    finally:
        app.close()


def test_a_number_with_a_notice_claimed_and_unanswered_waits_a_gap_from_now(
    tmp_path: Path, sqlite_url: str, server: AliyunServer
) -> None:
    """A notice claimed long ago and still `sending` (its worker's batch is slow, or it was
    claimed ahead of the batch sending now) may go out any moment: the number's next notice
    waits a whole gap from now, however old that claim is."""
    from notifier.delivery.transitions import move
    from notifier.status import DeliveryStatus as S

    cfg = aliyun_project(tmp_path, sqlite_url, server, people=2, aliyun={"per_number_seconds": 5})
    roster = (tmp_path / "p.csv").read_text(encoding="utf-8")
    (tmp_path / "p.csv").write_text(roster.replace("13800000002", "13800000001"), encoding="utf-8")
    app, run_id = approved(cfg)
    try:
        first, second = (r.id for r in rows(app, run_id))
        with app.engine.begin() as conn:  # claimed 10 s ago (twice the gap), not answered yet
            move(
                conn,
                [first],
                from_=S.PENDING,
                to=S.SENDING,
                actor="w2",
                now=NOON - timedelta(seconds=10),
                values={"provider": "aliyun"},
            )
        dispatcher = Dispatcher(app, providers_for(app.config), now=lambda: NOON)
        dispatcher.worker.heartbeat()
        claimed = dispatcher.stages.claimer.claim(run_id)
        assert claimed.jobs == ()
        waiting = {r.id: r for r in rows(app, run_id)}[second]
        assert waiting.status == "pending"
        assert waiting.next_attempt_at.replace(tzinfo=None) == (NOON + timedelta(seconds=5)).replace(
            tzinfo=None
        )
    finally:
        app.close()


def test_staff_read_in_the_console_that_aliyun_is_paused(
    tmp_path: Path, sqlite_url: str, server: AliyunServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pause is read back from the audit log, so the console of any worker shows it while it
    lasts (on the real clock here: the console compares with now)."""
    from datetime import datetime, timezone

    from notifier.identity import Role, add_account

    from ..console.test_runs import PW, browser_of

    monkeypatch.setenv("NOTIFIER_SESSION_SECRET", "p" * 40)
    cfg = aliyun_project(tmp_path, sqlite_url, server, people=2, providers='["aliyun", "outbox"]')
    app, run_id = approved(cfg)
    try:
        admin = add_account(app, None, "admin", frozenset({Role.ADMIN}), password=PW)
        add_account(app, admin, "zhang", frozenset({Role.OPERATOR}), password=PW)
        client = browser_of(app, "zhang")
        assert "已暂停" not in client.get("/runs").text
        server.fail_next(Fault.refuse("isv.AMOUNT_NOT_ENOUGH"))
        now = datetime.now(timezone.utc)
        asyncio.run(Dispatcher(app, providers_for(app.config), now=lambda: now).run(run_id, until_idle=True))
        page = client.get("/runs").text
        assert "短信服务商 aliyun 已暂停至" in page and "isv.AMOUNT_NOT_ENOUGH" in page
        assert "暂停期间由 outbox 发送" in page
        assert "已暂停" not in browser_of(app, "admin").get("/").text  # no runs.read: no resident matters
    finally:
        app.close()


def test_with_batch_false_each_message_takes_its_own_slot_of_the_rate(
    tmp_path: Path, db_url: str, server: AliyunServer
) -> None:
    """`batch = false` sends one SendSms per message, so each takes a slot of the rate limit:
    12 messages at 10 a second span at least 1.1 s (taken as one group of SendBatchSms's size,
    all 12 went out at once on one slot); the last 11 at least 1 s."""
    cfg = aliyun_project(tmp_path, db_url, server, people=12, aliyun={"batch": False, "rate_per_second": 10})
    app, run_id = approved(cfg)
    try:
        send(app, run_id)
        times = sorted(m.sent for m in server.messages)
        assert len(times) == 12 and {r.status for r in rows(app, run_id)} == {"sent"}
        # from the second: the first request's arrival is late by its connection's setup
        assert (times[-1] - times[1]).total_seconds() >= 10 / 10 * 0.95
    finally:
        app.close()
