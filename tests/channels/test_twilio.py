"""TwilioProvider against a Twilio-compatible server on 127.0.0.1, through the official twilio
client over real HTTP: the request it sends, how each Twilio answer maps to a retryable or
permanent ProviderError, and a whole campaign through the real Dispatcher with injected faults."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from twilio.request_validator import RequestValidator

from notifier import runs
from notifier.app import App
from notifier.channels.registry import build_provider
from notifier.channels.twilio import TwilioProvider
from notifier.channels.twilio.webhooks import status_event
from notifier.config import load_config
from notifier.delivery.workers import Worker, new_worker_id
from notifier.errors import ConfigError, ProviderError
from notifier.receipts import apply_event
from notifier.residents.importer import import_residents
from notifier.status import FINAL_STATUSES, DeliveryStatus
from notifier.storage.schema import audit_events, deliveries
from tests.support.campaign import NOON, ON, approve_all, rule, send, write_roster
from tests.support.crash import dead_pid
from tests.support.project import free_port, write_config
from tests.support.twilio_provider import BODY, CALLBACK, SENDER, TO, message, settings, sms_config
from tests.support.twilio_server import ACCOUNT_SID, AUTH_TOKEN, Fault, TwilioServer


@pytest.fixture
async def server() -> AsyncIterator[TwilioServer]:
    async with TwilioServer() as s:
        yield s


@pytest.fixture
async def provider(server: TwilioServer) -> AsyncIterator[TwilioProvider]:
    p = TwilioProvider("twilio", settings(server))
    await p.open()
    yield p
    await p.close()


# -- the request --------------------------------------------------------------------------
async def test_send_delivers_chinese_text_unchanged(provider: TwilioProvider, server: TwilioServer) -> None:
    result = await provider.send(message())
    assert result.status is DeliveryStatus.SENT
    assert re.fullmatch(r"SM[0-9a-f]{32}", result.provider_message_id or "")
    assert result.raw == {"status": "queued", "num_segments": 2}
    [m] = server.messages
    assert (m.sid, m.to, m.from_, m.body) == (result.provider_message_id, TO, SENDER, BODY)
    assert m.status_callback == CALLBACK + "?d=7"


async def test_messaging_service_and_callback_variants(server: TwilioServer) -> None:
    p = TwilioProvider(
        "twilio",
        settings(
            server,
            **{
                "from": "",
                "messaging_service_sid": "MG" + "1" * 32,
                "status_callback_url": CALLBACK + "?site=x",
            },
        ),
    )
    try:
        result = await p.send(message(delivery_id=42))
    finally:
        await p.close()
    [m] = server.messages
    assert (m.from_, m.messaging_service_sid, result.raw["status"]) == (None, "MG" + "1" * 32, "accepted")
    assert m.status_callback == CALLBACK + "?site=x&d=42"
    assert TwilioProvider("t", settings(server, status_callback_url="")).status_callback(1) is None


async def test_one_session_serves_concurrent_sends(provider: TwilioProvider, server: TwilioServer) -> None:
    session = provider._http.session if provider._http else None
    results = await asyncio.gather(*(provider.send(message(i, f"+86138000001{i:02d}")) for i in range(20)))
    assert len({r.provider_message_id for r in results}) == 20 and len(server.messages) == 20
    assert provider._http is not None and provider._http.session is session


# -- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fault, code, retryable, reason",
    [
        (Fault.invalid_number(), "21211", False, "号码无效 / invalid 'To' phone number"),
        (Fault.not_mobile(), "21614", False, "不是手机号码"),
        (Fault.unsubscribed(), "21610", False, "已退订"),
        (Fault.region_disabled(), "21408", False, "region"),
        (Fault.unreachable(), "21612", False, "无法"),
        (Fault.too_many_requests(), "20429", True, "请求过多"),
        (Fault(429, None, "Too Many Requests"), "429", True, "Twilio"),
        (Fault.server_error(), "500", True, "Twilio 暂时不可用"),
        (Fault(503, 503, "Service Unavailable"), "503", True, "HTTP 503"),
        (
            Fault(400, 21617, "The concatenated message body exceeds the 1600 character limit"),
            "21617",
            False,
            "1600",
        ),
    ],
)
async def test_twilio_errors_map_to_provider_errors(
    provider: TwilioProvider, server: TwilioServer, fault: Fault, code: str, retryable: bool, reason: str
) -> None:
    server.fail_next(fault)
    with pytest.raises(ProviderError) as info:
        await provider.send(message())
    err = info.value
    assert (err.code, err.retryable, err.provider) == (code, retryable, "twilio")
    assert reason in err.message and f"[{code}]" in err.message
    assert "13800000001" not in err.message and "138****0001" in err.message
    assert err.raw["status"] == fault.status and str(err.raw["code"]) == code
    assert server.messages == []


async def test_twilio_quoting_the_number_is_masked(provider: TwilioProvider, server: TwilioServer) -> None:
    server.fail_next(Fault(400, 21211, f"The 'To' number {TO} is not a valid phone number."))
    with pytest.raises(ProviderError) as info:
        await provider.send(message())
    assert "13800000001" not in info.value.message


async def test_timeout_is_ambiguous_because_twilio_accepted(server: TwilioServer) -> None:
    """The answer is lost, the message was taken: retrying could send it twice, so the error says
    the outcome is unknown; telling the two apart is reconciliation's job (by recipient and time)."""
    server.fail_next(Fault.slow(5))
    p = TwilioProvider("twilio", settings(server, timeout=0.3))
    try:
        with pytest.raises(ProviderError) as info:
            await p.send(message())
    finally:
        await p.close()
    assert (info.value.code, info.value.retryable, info.value.ambiguous) == ("timeout", False, True)
    assert len(server.messages) == 1


async def test_unreachable_server_is_retryable() -> None:
    p = TwilioProvider(
        "twilio",
        {
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "from": SENDER,
            "base_url": f"http://127.0.0.1:{free_port()}",
        },
    )
    try:
        with pytest.raises(ProviderError) as info:
            await p.send(message())
    finally:
        await p.close()
    assert (info.value.code, info.value.retryable) == ("connect", True)


async def test_wrong_credentials_are_permanent(server: TwilioServer) -> None:
    p = TwilioProvider("twilio", settings(server, auth_token="wrong"))
    try:
        with pytest.raises(ProviderError) as info:
            await p.send(message())
    finally:
        await p.close()
    assert (info.value.code, info.value.retryable) == ("20003", False)
    assert "认证失败" in info.value.message and "wrong" not in info.value.message
    assert server.messages == []


def test_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="`from` or `messaging_service_sid`"):
        TwilioProvider("twilio", {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN})
    with pytest.raises(ConfigError, match="account_sid and auth_token"):
        TwilioProvider("twilio", {"from": SENDER})
    cfg = write_config(
        tmp_path,
        "sqlite:///x.db",
        f'[providers.twilio]\naccount_sid = "{ACCOUNT_SID}"\n'
        f'auth_token = "{AUTH_TOKEN}"\nfrom = "{SENDER}"\n',
    )
    p = build_provider(load_config(cfg), "twilio")
    assert isinstance(p, TwilioProvider) and (p.timeout, p.rate_per_second) == (10.0, 10.0)
    assert p.describe() == f"twilio (api.twilio.com, from {SENDER})"


# -- the test server itself: fetch, list and paging through the official client -------------
async def test_fetch_and_list_through_the_twilio_client(server: TwilioServer) -> None:
    server.page_size = 2
    p = TwilioProvider("twilio", settings(server))
    try:
        sids = [
            (await p.send(message(i, TO if i % 2 else "+8613900000002"))).provider_message_id
            for i in range(5)
        ]
        assert p._client is not None
        fetched = await p._client.messages(sids[0]).fetch_async()
        assert (fetched.body, fetched.to, fetched.num_segments) == (BODY, "+8613900000002", "2")
        today = server.messages[0].created
        listed = await p._client.messages.list_async(to="+8613900000002", date_sent_after=today)
        assert sorted(m.sid for m in listed) == sorted(sids[0::2])  # type: ignore[type-var]  # three, over two pages
        assert await p._client.messages.list_async(to=TO, date_sent_before=today.replace(year=2020)) == []
    finally:
        await p.close()


async def test_random_faults_are_reproducible(server: TwilioServer) -> None:
    async def answers(seed: int) -> list[int]:
        async with TwilioServer() as s:
            s.random_faults(40, seed)
            p = TwilioProvider("twilio", settings(s))
            try:
                for i in range(20):
                    try:
                        await p.send(message(i))
                    except ProviderError as exc:
                        assert exc.retryable
            finally:
                await p.close()
            assert len(s.messages) == sum(1 for _, status in s.attempts if status == 201)
            return [status for _, status in s.attempts]

    first = await answers(3)
    assert first == await answers(3) and {429, 500, 201} <= set(first)


async def test_signed_status_callbacks(server: TwilioServer, provider: TwilioProvider) -> None:
    received: list[tuple[str, dict[str, str], bool]] = []
    validator = RequestValidator(AUTH_TOKEN)

    async def hook(request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        received.append(
            (
                str(request.url),
                form,
                validator.validate(str(request.url), form, request.headers["X-Twilio-Signature"]),
            )
        )
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/twilio/status", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        p = TwilioProvider(
            "twilio", settings(server, status_callback_url=f"http://127.0.0.1:{port}/twilio/status")
        )
        sid = (await p.send(message(9))).provider_message_id
        await p.close()
        assert sid
        assert await server.send_status_callbacks(sid) == [204, 204, 204]
        assert [f["MessageStatus"] for _, f, _ in received] == ["queued", "sent", "delivered"]
        assert all(ok and url.endswith("?d=9") and f["MessageSid"] == sid for url, f, ok in received)
        received.clear()
        await server.send_status_callbacks(sid, ["sent", "undelivered"], duplicate=True, out_of_order=True)
        assert [f["MessageStatus"] for _, f, _ in received] == ["undelivered", "undelivered", "sent", "sent"]
        assert received[0][1]["ErrorCode"] == "30003" and server.get(sid).status == "undelivered"
        assert all(ok for _, _, ok in received)
    finally:
        await runner.cleanup()


# -- a campaign through the real Dispatcher ------------------------------------------------
PHONES = [f"138000001{i:02d}" for i in range(1, 11)]
INVALID = "+8613800000109"


def campaign(
    tmp_path: Path,
    db_url: str,
    server: TwilioServer,
    sending: str = "",
    twilio: str = "",
    providers: str = '["twilio"]',
) -> App:
    callback = f'{twilio}\nstatus_callback_url = "{CALLBACK}"\nrate_per_second = 1000'
    cfg = write_config(tmp_path, db_url, sms_config(server, sending, callback, providers))
    roster = [
        [f"T{i:02d}", f"李{i}", phone, "", f"东村{i}号", "城关镇", "东村", "农村", "2", ""]
        for i, phone in enumerate(PHONES, 1)
    ]
    app = App.open(cfg)
    import_residents(app, write_roster(tmp_path / "p.csv", roster))
    return app


def moves(app: App, delivery_id: int) -> list[tuple[str, str]]:
    """A delivery's audited status changes (from, to), in order."""
    with app.engine.connect() as conn:
        return [
            (e["from"], e["to"])
            for e in map(
                json.loads,
                conn.execute(
                    sa.select(audit_events.c.payload)
                    .where(
                        audit_events.c.action == "delivery.status",
                        audit_events.c.subject == f"delivery:{delivery_id}",
                    )
                    .order_by(audit_events.c.seq)
                ).scalars(),
            )
        ]


def sms_rows(app: App, run_id: int) -> dict[str, Any]:
    with app.engine.connect() as conn:
        return {
            r.recipient: r for r in conn.execute(sa.select(deliveries).where(deliveries.c.run_id == run_id))
        }


def test_campaign_through_twilio_with_faults(tmp_path: Path, db_url: str, tserver: TwilioServer) -> None:
    tserver.number_faults[INVALID] = Fault.invalid_number()
    tserver.fail_next(
        Fault.too_many_requests(),
        Fault.server_error(),
        Fault(429, None, "Too Many Requests"),
        Fault(503, None, "Service Unavailable"),
    )
    app = campaign(tmp_path, db_url, tserver)
    try:
        run_id = runs.create_run(app, rule(app), ON, "clerk").run
        approve_all(app, run_id)
        report = send(app, run_id)
        # The invalid number fails on SMS and falls back to a letter (the rule's next channel).
        assert (report.sent, report.failed, report.retried, report.remaining) == (10, 1, 4, 0)
        assert report.by_channel == {"sms": 9, "letter": 1}
        rows = {k: r for k, r in sms_rows(app, run_id).items() if r.channel == "sms"}
        assert len(rows) == 10
        assert all(DeliveryStatus(r.status) in FINAL_STATUSES for r in rows.values())
        # Exactly one accepted message per reachable resident; none for the invalid number.
        valid = {"+86" + p for p in PHONES} - {INVALID}
        assert tserver.accepted_by_recipient() == {to: 1 for to in valid}
        for to in valid:
            r, m = rows[to], next(m for m in tserver.messages if m.to == to)
            assert (r.status, r.provider_message_id, r.error_code) == ("sent", m.sid, None)
            assert m.status_callback == f"{CALLBACK}?d={r.id}"
            assert m.body.startswith("【县农业农村局】李") and "回TD退订" in m.body
        bad = rows[INVALID]
        assert (bad.status, bad.error_code, bad.attempts) == (
            "failed",
            "21211",
            1,
        ) and "号码无效" in bad.reason
        assert sorted(r.attempts for r in rows.values()) == [1] * 6 + [2] * 4
        assert runs.show_run(app, run_id)["status"] == "completed"
        # Sending again sends nothing.
        assert send(app, run_id).sent == 0 and len(tserver.messages) == 9
    finally:
        app.close()


def test_campaign_under_random_faults_is_exactly_once(
    tmp_path: Path, sqlite_url: str, tserver: TwilioServer
) -> None:
    tserver.random_faults(35, seed=11)
    app = campaign(tmp_path, sqlite_url, tserver, "max_attempts = 30")
    try:
        run_id = runs.create_run(app, rule(app), ON, "clerk").run
        approve_all(app, run_id)
        report = send(app, run_id)
        assert (report.sent, report.failed, report.remaining) == (10, 0, 0)
        assert tserver.accepted_by_recipient() == {"+86" + p: 1 for p in PHONES}
        assert {r.status for r in sms_rows(app, run_id).values()} == {"sent"}
        assert len(tserver.attempts) == 10 + report.retried
    finally:
        app.close()


def test_lost_answer_is_settled_with_twilio_not_resent(
    tmp_path: Path, sqlite_url: str, tserver: TwilioServer
) -> None:
    """Twilio took the message but the answer came too late: the delivery is `unknown`, and once
    it has settled the same `send --until-idle` asks Twilio, finds it and records it sent."""
    tserver.fail_next(Fault.slow(3))
    app = campaign(tmp_path, sqlite_url, tserver, "settle_seconds = 1", twilio="timeout = 0.5")
    try:
        run_id = runs.create_run(app, rule(app), ON, "clerk").run
        approve_all(app, run_id)
        started = time.monotonic()
        report = send(app, run_id)
        assert time.monotonic() - started >= 1  # waited for the request to settle before asking
        assert (report.sent, report.reconciled, report.unknown, report.retried, report.remaining) == (
            9,
            1,
            0,
            0,
            0,
        )
        lost = next(r for r in sms_rows(app, run_id).values() if r.error_code == "timeout")
        sid = next(m.sid for m in tserver.messages if m.to == lost.recipient)
        assert (lost.status, lost.provider_message_id, lost.attempts) == (
            "sent",
            sid,
            1,
        ) and "reconciled" in lost.reason
        assert tserver.accepted_by_recipient() == {"+86" + p: 1 for p in PHONES}  # nobody twice
        assert moves(app, lost.id) == [("pending", "sending"), ("sending", "unknown"), ("unknown", "sent")]
        assert runs.show_run(app, run_id)["status"] == "completed"
    finally:
        app.close()


def test_what_cannot_be_looked_up_stays_unknown_and_is_never_resent(
    tmp_path: Path, sqlite_url: str, tserver: TwilioServer
) -> None:
    tserver.fail_next(Fault.slow(3))
    tserver.fail_reads(1000)  # Twilio cannot be asked
    app = campaign(
        tmp_path, sqlite_url, tserver, "settle_seconds = 0\nmax_attempts = 3", twilio="timeout = 0.5"
    )
    try:
        run_id = runs.create_run(app, rule(app), ON, "clerk").run
        approve_all(app, run_id)
        report = send(app, run_id)
        assert (report.sent, report.unknown, report.reconciled) == (9, 1, 0)
        assert tserver.failing_reads == 1000 - 3  # asked max_attempts times, then gave up
        assert runs.show_run(app, run_id)["status"] == "approved"  # not complete while an outcome is open
        assert len(tserver.messages) == 10  # and nothing was sent twice
        tserver.fail_reads(0)  # Twilio answers again: the next send settles it
        report = send(app, run_id)
        assert (report.sent, report.reconciled, report.unknown) == (0, 1, 0)
        assert {r.status for r in sms_rows(app, run_id).values()} == {"sent"}
        assert tserver.accepted_by_recipient() == {"+86" + p: 1 for p in PHONES}
        assert runs.show_run(app, run_id)["status"] == "completed"
    finally:
        app.close()


def test_unknown_that_twilio_never_took_is_sent_again(
    tmp_path: Path, sqlite_url: str, tserver: TwilioServer
) -> None:
    """A row stuck in `sending` by a crash (no message at Twilio) goes out exactly once after restart."""
    app = campaign(tmp_path, sqlite_url, tserver, "settle_seconds = 0")
    try:
        run_id = runs.create_run(app, rule(app), ON, "clerk").run
        approve_all(app, run_id)
        with app.engine.begin() as conn:  # as a process killed right after marking the row `sending`
            conn.execute(
                deliveries.update()
                .where(deliveries.c.recipient == "+86" + PHONES[0])
                .values(status="sending", updated_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
            )
        report = send(app, run_id)
        assert (report.sent, report.remaining) == (10, 0)
        row = sms_rows(app, run_id)["+86" + PHONES[0]]
        with app.engine.connect() as conn:
            reasons = [
                json.loads(p)["reason"]
                for p in conn.execute(
                    sa.select(audit_events.c.payload).where(audit_events.c.subject == f"delivery:{row.id}")
                ).scalars()
                if "reason" in json.loads(p)
            ]
        assert row.status == "sent" and reasons == ["reconciled: the provider never took it; sent again"]
        assert tserver.accepted_by_recipient() == {"+86" + p: 1 for p in PHONES}
    finally:
        app.close()


def test_a_restart_settles_the_rows_of_a_dead_sender_but_not_of_a_live_one(
    tmp_path: Path, sqlite_url: str, tserver: TwilioServer
) -> None:
    app = campaign(tmp_path, sqlite_url, tserver, "settle_seconds = 0")
    try:
        run_id = runs.create_run(app, rule(app), ON, "clerk").run
        approve_all(app, run_id)
        live = Worker(app.engine, timedelta(seconds=120), "other-host:4242:aaaaaaaa")
        live.heartbeat()  # another machine's `serve`, sending right now
        dead = f"{new_worker_id().split(':')[0]}:{dead_pid()}:bbbbbbbb"  # a `send` on this host, killed
        for phone, worker in ((PHONES[0], live.id), (PHONES[1], dead)):
            with app.engine.begin() as conn:
                conn.execute(
                    deliveries.update()
                    .where(deliveries.c.recipient == "+86" + phone)
                    .values(status="sending", claimed_by=worker, attempts=1, updated_at=NOON)
                )
        report = send(app, run_id)
        assert (report.sent, report.reconciled, report.remaining) == (9, 1, 1)
        rows = sms_rows(app, run_id)
        assert rows["+86" + PHONES[0]].status == "sending"  # left to its live worker
        settled = rows["+86" + PHONES[1]]
        assert settled.status == "sent" and moves(app, settled.id) == [
            ("sending", "pending"),
            ("pending", "sending"),
            ("sending", "sent"),
        ]
        assert tserver.accepted_by_recipient() == {"+86" + p: 1 for p in PHONES[1:]}
    finally:
        app.close()


def test_a_receipt_before_the_answer_wins_and_the_answer_is_audited_as_such(
    tmp_path: Path, sqlite_url: str, tserver: TwilioServer
) -> None:
    """Twilio can call back before its answer to the create arrives: the receipt settles the
    row, and the late answer adds its facts without claiming a status change."""
    tserver.fail_next(Fault(201, delay=1.0))
    app = campaign(tmp_path, sqlite_url, tserver)
    try:
        run_id = runs.create_run(app, rule(app), ON, "clerk").run
        approve_all(app, run_id)

        def deliver_early() -> None:  # the webhook, while the answer is still on its way
            while not tserver.messages:
                time.sleep(0.01)
            m = tserver.messages[0]
            d = sms_rows(app, run_id)[m.to]
            assert d.status == "sending"
            apply_event(
                app, status_event({"MessageSid": m.sid, "MessageStatus": "delivered"}, {"d": str(d.id)})
            )

        early = threading.Thread(target=deliver_early)
        early.start()
        report = send(app, run_id)
        early.join()
        assert report.sent == 10
        m = tserver.messages[0]
        row = sms_rows(app, run_id)[m.to]
        assert (row.status, row.provider_message_id, row.segments) == ("delivered", m.sid, m.num_segments)
        assert row.sent_at is not None
        with app.engine.connect() as conn:
            events = [
                (a, json.loads(p))
                for a, p in conn.execute(
                    sa.select(audit_events.c.action, audit_events.c.payload)
                    .where(audit_events.c.subject == f"delivery:{row.id}")
                    .order_by(audit_events.c.seq)
                )
            ]
        assert [(a, e.get("from"), e.get("to")) for a, e in events] == [
            ("delivery.status", "pending", "sending"),
            ("delivery.receipt", "sending", "delivered"),
            ("delivery.send_result", None, None),
        ]
        assert (events[-1][1]["answer"], events[-1][1]["message_id"]) == ("sent", m.sid)
    finally:
        app.close()


def test_failover_to_the_next_provider_when_twilio_keeps_failing(
    tmp_path: Path, sqlite_url: str, tserver: TwilioServer
) -> None:
    tserver.random_faults(100, seed=1)  # every request answered 429 or 5xx
    app = campaign(
        tmp_path,
        sqlite_url,
        tserver,
        "max_attempts = 10\nfailover_after = 3",
        providers='["twilio", "outbox"]',
    )
    try:
        run_id = runs.create_run(app, rule(app), ON, "clerk").run
        approve_all(app, run_id)
        report = send(app, run_id)
        assert (report.sent, report.failed, report.remaining) == (10, 0, 0)
        assert (
            tserver.messages == []
            and len(list((tmp_path / "outbox" / f"run-{run_id}").glob("*.sms.txt"))) == 10
        )
        assert {r.provider for r in sms_rows(app, run_id).values()} == {"outbox"}
        with app.engine.connect() as conn:
            events = [
                json.loads(p)
                for p in conn.execute(
                    sa.select(audit_events.c.payload).where(audit_events.c.action == "provider.failover")
                ).scalars()
            ]
        assert [(e["provider"], e["next"]) for e in events] == [("twilio", "outbox")]
    finally:
        app.close()


def test_retries_stop_at_the_deadline(tmp_path: Path, sqlite_url: str, tserver: TwilioServer) -> None:
    tserver.random_faults(100, seed=2)
    app = campaign(tmp_path, sqlite_url, tserver, "max_attempts = 100\nretry_deadline_seconds = 0")
    try:
        run_id = runs.create_run(app, rule(app), ON, "clerk").run
        approve_all(app, run_id)
        report = send(
            app, run_id, now=datetime.now(timezone.utc)
        )  # the real clock: past the deadline at once
        assert (report.failed, report.retried, report.by_channel) == (
            10,
            0,
            {"letter": 10},
        )  # letters instead
        assert {r.status for r in sms_rows(app, run_id).values() if r.channel == "sms"} == {"failed"}
    finally:
        app.close()
