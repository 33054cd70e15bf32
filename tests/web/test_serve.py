"""`notifier serve` over real HTTP on 127.0.0.1: signed Twilio status callbacks (from the
Twilio-compatible test server) settle deliveries, duplicates and out-of-order receipts are
recorded and ignored, forged requests change nothing, an inbound 退订 opts the number out,
/healthz and /metrics answer; and a real `notifier serve` process sends an approved run and
stops cleanly on SIGTERM, finishing the batch in flight (DESIGN §3, §8 invariants 2-5)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from twilio.request_validator import RequestValidator

from notifier.app import App
from notifier.audit.pseudonyms import subject_of_phone
from notifier.channels.twilio.webhooks import public_base
from notifier.masking import mask_text
from notifier.residents.importer import import_residents
from notifier.storage.schema import audit_events, deliveries, opt_outs
from tests.support.campaign import (
    PHONES,
    approved_run,
    audit_rows,
    rule,
    send,
    sid_of,
    sms_project,
    statuses,
    write_roster,
)
from tests.support.project import free_port
from tests.support.twilio_provider import SENDER
from tests.support.twilio_server import ACCOUNT_SID, AUTH_TOKEN, Fault, TwilioServer
from tests.support.webserver import WebThread, http, signed_post, start_serve, stop_serve, wait_for


def rows(app: App) -> dict[str, Any]:
    with app.engine.connect() as conn:
        return {
            r.recipient: r for r in conn.execute(sa.select(deliveries).where(deliveries.c.channel == "sms"))
        }


def audit_count(app: App) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(audit_events)).scalar_one())


@pytest.fixture
def sent(tmp_path: Path, db_url: str, tserver: TwilioServer) -> Iterator[tuple[App, WebThread]]:
    """A run sent to Twilio (every SMS `sent`), and the web app listening for its receipts."""
    port = free_port()
    cfg = sms_project(tmp_path, db_url, tserver, port)
    run_id = approved_run(cfg)
    app = App.open(cfg)
    try:
        assert send(app, run_id).sent == 10
        with WebThread(app, port) as web:
            yield app, web
    finally:
        app.close()


# -- receipts ---------------------------------------------------------------------------------
def test_signed_callbacks_move_sent_to_delivered(sent: tuple[App, WebThread], tserver: TwilioServer) -> None:
    app, _ = sent
    sid = sid_of(tserver, PHONES[0])
    assert tserver.send_status_callbacks_sync(sid) == [200, 200, 200]  # queued, sent, delivered
    row = rows(app)["+86" + PHONES[0]]
    assert (row.status, row.provider_message_id) == ("delivered", sid)
    events = [
        (s, e["outcome"], e["provider_status"], e["from"], e["to"])
        for s, e in audit_rows(app, "delivery.receipt")
    ]
    assert events == [
        (f"delivery:{row.id}", "duplicate", "queued", "sent", "sent"),
        (f"delivery:{row.id}", "duplicate", "sent", "sent", "sent"),
        (f"delivery:{row.id}", "applied", "delivered", "sent", "delivered"),
    ]
    raw = audit_rows(app, "delivery.receipt")[-1][1]["raw"]
    assert raw["MessageSid"] == sid and raw["AccountSid"] == ACCOUNT_SID
    assert raw["To"] == mask_text("+86" + PHONES[0]) != "+86" + PHONES[0]  # the audit keeps no number
    assert {r.status for k, r in rows(app).items() if k != "+86" + PHONES[0]} == {"sent"}  # nobody else moved


def test_duplicate_and_out_of_order_receipts_never_move_backwards(
    sent: tuple[App, WebThread], tserver: TwilioServer
) -> None:
    app, _ = sent
    sid = sid_of(tserver, PHONES[1])
    answers = tserver.send_status_callbacks_sync(
        sid, ("queued", "sent", "delivered"), duplicate=True, out_of_order=True
    )
    assert answers == [200] * 6
    row = rows(app)["+86" + PHONES[1]]
    assert row.status == "delivered"
    outcomes = [
        (e["provider_status"], e["outcome"])
        for s, e in audit_rows(app, "delivery.receipt")
        if s == f"delivery:{row.id}"
    ]
    assert outcomes == [
        ("delivered", "applied"),
        ("delivered", "duplicate"),
        ("sent", "late"),
        ("sent", "late"),
        ("queued", "late"),
        ("queued", "late"),
    ]
    # A failure report after delivery is late too: delivered stays delivered.
    tserver.send_status_callbacks_sync(sid, ("undelivered",))
    assert rows(app)["+86" + PHONES[1]].status == "delivered"


def test_undelivered_receipt_keeps_the_error_code(sent: tuple[App, WebThread], tserver: TwilioServer) -> None:
    app, _ = sent
    sid = sid_of(tserver, PHONES[2])
    assert tserver.send_status_callbacks_sync(sid, ("sent", "undelivered"), error_code=30003) == [200, 200]
    row = rows(app)["+86" + PHONES[2]]
    assert (row.status, row.error_code) == ("undelivered", "30003") and "手机无法接通" in row.reason
    [(_, event)] = [e for e in audit_rows(app, "delivery.receipt") if e[1]["outcome"] == "applied"]
    assert (event["error_code"], event["raw"]["ErrorCode"]) == ("30003", "30003")
    # The carrier could not reach them: the rule's next reachable channel (a letter) is queued once.
    with app.engine.connect() as conn:
        fallbacks = conn.execute(sa.select(deliveries).where(deliveries.c.fallback_of == row.id)).all()
    assert [(f.channel, f.status, f.recipient) for f in fallbacks] == [("letter", "pending", "南村3号")]
    tserver.send_status_callbacks_sync(
        sid, ("undelivered",), error_code=30003
    )  # duplicate: no second fallback
    with app.engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).where(deliveries.c.fallback_of == row.id)).scalar_one()
            == 1
        )


def test_receipt_found_by_message_sid_without_delivery_id(
    sent: tuple[App, WebThread], tserver: TwilioServer
) -> None:
    app, web = sent
    sid = sid_of(tserver, PHONES[3])
    assert tserver.send_status_callbacks_sync(sid, ("delivered",), url=web.url + "/twilio/status") == [200]
    assert rows(app)["+86" + PHONES[3]].status == "delivered"


def test_forged_or_unsigned_requests_get_403_and_change_nothing(
    sent: tuple[App, WebThread], tserver: TwilioServer
) -> None:
    app, web = sent
    row = rows(app)["+86" + PHONES[4]]
    url = f"{web.url}/twilio/status?d={row.id}"
    params = {"AccountSid": ACCOUNT_SID, "MessageSid": row.provider_message_id, "MessageStatus": "delivered"}
    before = audit_count(app)
    assert signed_post(url, params, token="not-the-auth-token")[0] == 403
    assert http("POST", url, params)[0] == 403  # no signature at all
    good = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    assert (
        http("POST", url, params | {"MessageStatus": "failed"}, {"X-Twilio-Signature": good})[0] == 403
    )  # altered
    assert (
        http("POST", f"{web.url}/twilio/status?d={row.id + 1}", params, {"X-Twilio-Signature": good})[0]
        == 403
    )
    status, _, body = signed_post(
        f"{web.url}/twilio/inbound", {"From": "+86" + PHONES[4], "Body": "退订"}, token="forged"
    )
    assert status == 403 and "X-Twilio-Signature" in body
    assert rows(app)["+86" + PHONES[4]].status == "sent" and audit_count(app) == before
    with app.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(opt_outs)).scalar_one() == 0


def test_malformed_signed_requests_get_400_with_a_reason(sent: tuple[App, WebThread]) -> None:
    app, web = sent
    row = rows(app)["+86" + PHONES[5]]
    base = {"AccountSid": ACCOUNT_SID, "MessageSid": row.provider_message_id}
    before = audit_count(app)
    cases = [
        (f"/twilio/status?d={row.id}", base, 400, "MessageStatus"),
        (f"/twilio/status?d={row.id}", base | {"MessageStatus": "teleported"}, 400, "unknown MessageStatus"),
        ("/twilio/status?d=abc", base | {"MessageStatus": "delivered"}, 400, "delivery id"),
        ("/twilio/status", {"AccountSid": ACCOUNT_SID, "MessageStatus": "delivered"}, 400, "MessageSid"),
        ("/twilio/inbound", {"Body": "退订"}, 400, "From"),
        ("/twilio/inbound", {"From": "not a number", "Body": "TD"}, 400, "not a valid phone number"),
    ]
    for path, params, code, reason in cases:
        status, ctype, body = signed_post(web.url + path, params)
        assert (status, reason in json.loads(body)["error"]) == (code, True), (path, body)
    assert rows(app)["+86" + PHONES[5]].status == "sent" and audit_count(app) == before
    # Signed, well formed, but for no delivery: recorded (it is evidence), answered 404.
    status, _, body = signed_post(web.url + "/twilio/status?d=999999", base | {"MessageStatus": "delivered"})
    assert status == 404 and "delivery 999999" in json.loads(body)["error"]
    assert [e["outcome"] for _, e in audit_rows(app, "delivery.receipt")] == ["unmatched"]
    # Not a form at all.
    status, _, body = http(
        "POST",
        web.url + "/twilio/status",
        None,
        {"X-Twilio-Signature": "x", "Content-Type": "application/json"},
    )
    assert status == 400 and "x-www-form-urlencoded" in body


# -- inbound SMS: opt-out -------------------------------------------------------------------
def test_inbound_unsubscribe_opts_out_and_the_next_send_skips(
    tmp_path: Path, db_url: str, tserver: TwilioServer
) -> None:
    port = free_port()
    cfg = sms_project(tmp_path, db_url, tserver, port)
    run_id = approved_run(cfg)
    app = App.open(cfg)
    try:
        with WebThread(app, port) as web:
            inbound = web.url + "/twilio/inbound"
            msg = {
                "AccountSid": ACCOUNT_SID,
                "MessageSid": "SM" + "a" * 32,
                "To": SENDER,
                "From": "+86" + PHONES[0],
            }
            status, ctype, body = signed_post(inbound, msg | {"Body": " 退订 "})
            assert (status, ctype.split(";")[0], body) == (
                200,
                "application/xml",
                '<?xml version="1.0" encoding="UTF-8"?><Response/>',
            )
            assert signed_post(inbound, msg | {"Body": "td"})[0] == 200  # again: idempotent
            assert (
                signed_post(inbound, msg | {"From": "+86" + PHONES[1], "Body": "请问补贴何时发放？退订"})[0]
                == 200
            )
            assert signed_post(inbound, msg | {"From": "+86" + PHONES[2], "Body": "Stop"})[0] == 200
        with app.engine.connect() as conn:
            listed = dict(conn.execute(sa.select(opt_outs.c.phone, opt_outs.c.source)).tuples().all())
        assert set(listed) == {
            "+86" + PHONES[0],
            "+86" + PHONES[2],
        }  # a question that mentions 退订 is not one
        assert [(s, e["keyword"]) for s, e in audit_rows(app, "optout.added")] == [
            (subject_of_phone(app.engine, app.config, "+86" + PHONES[0]), "退订"),
            (subject_of_phone(app.engine, app.config, "+86" + PHONES[2]), "Stop"),
        ]
        assert len(audit_rows(app, "optout.repeated")) == 1
        report = send(app, run_id)
        assert (report.sent, report.skipped) == (8, 2)
        after = rows(app)
        for phone in (PHONES[0], PHONES[2]):
            assert (after["+86" + phone].status, after["+86" + phone].reason) == (
                "skipped",
                "number opted out of SMS",
            )
        assert set(tserver.accepted_by_recipient()) == {"+86" + p for p in PHONES} - {
            "+86" + PHONES[0],
            "+86" + PHONES[2],
        }
    finally:
        app.close()


# -- health and metrics -----------------------------------------------------------------------
def test_healthz_and_metrics(sent: tuple[App, WebThread], tserver: TwilioServer) -> None:
    app, web = sent
    tserver.send_status_callbacks_sync(sid_of(tserver, PHONES[0]), ("delivered",))
    status, ctype, body = http("GET", web.url + "/healthz")
    assert (status, json.loads(body)) == (200, {"ok": True, "database": "ok", "status": "ok", "degraded": {}})
    status, ctype, text = http("GET", web.url + "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    lines = set(text.splitlines())
    assert {
        'notifier_deliveries{status="delivered",channel="sms"} 1',
        'notifier_deliveries{status="sent",channel="sms"} 9',
        'notifier_deliveries{status="pending",channel="email"} 0',
        "notifier_queue_depth 0",
        'notifier_runs{status="completed"} 1',
        'notifier_runs{status="approved"} 0',
        "# TYPE notifier_deliveries gauge",
    } <= lines
    assert http("GET", web.url + "/twilio/status")[0] == 405


def test_public_base_from_the_callback_url() -> None:
    assert public_base("https://notice.example.gov.cn/twilio/status") == "https://notice.example.gov.cn"
    assert (
        public_base("https://gw.example.gov.cn/notifier/twilio/status?site=x")
        == "https://gw.example.gov.cn/notifier"
    )


# -- `notifier serve` as a process --------------------------------------------------------------
def test_serve_sends_an_approved_run_takes_receipts_and_stops_cleanly(
    serving: tuple[Path, subprocess.Popen[str]], tserver: TwilioServer
) -> None:
    cfg, proc = serving
    assert tserver.accepted_by_recipient() == {"+86" + p: 1 for p in PHONES}
    sid = sid_of(tserver, PHONES[0])
    assert tserver.send_status_callbacks_sync(sid) == [200, 200, 200]  # to the serving process
    code, err = stop_serve(proc)
    assert code == 0, err
    assert "stopped cleanly" in err and "Traceback" not in err
    assert statuses(cfg) == {"sent": 9, "delivered": 1}
    assert tserver.accepted_by_recipient() == {"+86" + p: 1 for p in PHONES}  # nothing sent twice


def test_sigterm_lets_the_batch_in_flight_finish_and_takes_no_new_work(
    tmp_path: Path, sqlite_url: str, tserver: TwilioServer
) -> None:
    port = free_port()
    cfg = sms_project(tmp_path, sqlite_url, tserver, port, "batch_size = 2", twilio="concurrency = 1")
    approved_run(cfg)
    tserver.fail_next(Fault.slow(2.0))  # the first message takes Twilio 2 s to answer
    proc = start_serve(cfg, port)
    try:
        # Under a rate limit the next batch is claimed ahead while one is sending; it begins once
        # every request of that one has its slot, which the second cannot have while the first's
        # answer is slow and holds the one connection allowed (delivery/loop.py).
        wait_for(lambda: statuses(cfg).get("sending", 0) == 4, 30, "a batch in flight, the next claimed")
        code, err = stop_serve(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, err
    after = statuses(cfg)
    assert after == {"sent": 2, "pending": 8}, after  # finished, nothing new claimed,
    assert len(tserver.messages) == 2
    app = App.open(cfg)  # and the next given back, unsent
    try:
        with app.engine.connect() as conn:
            codes = [
                tuple(r) for r in conn.execute(sa.select(deliveries.c.error_code, deliveries.c.attempts))
            ]
    finally:
        app.close()
    assert codes.count(("withdrawn", 0)) == 2


def test_a_batch_overrunning_the_shutdown_timeout_is_abandoned_with_exit_1(
    tmp_path: Path, sqlite_url: str, tserver: TwilioServer
) -> None:
    """The unclean case, stated: the process still exits in time, says so, and the rows it left
    `sending` are for the next start's reconciliation (test_twilio proves that path)."""
    port = free_port()
    cfg = sms_project(
        tmp_path, sqlite_url, tserver, port, "batch_size = 2", shutdown_timeout=1, twilio="concurrency = 1"
    )
    approved_run(cfg)
    tserver.fail_next(Fault.slow(8.0))
    proc = start_serve(cfg, port)
    try:
        wait_for(lambda: statuses(cfg).get("sending", 0) == 4, 30, "a batch in flight, the next claimed")
        started = time.monotonic()
        code, err = stop_serve(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 1 and time.monotonic() - started < 6, err
    assert "shutdown timeout" in err and "reconciled at the next start" in err and "Traceback" not in err
    # the slow batch is abandoned (reconciled at the next start), the one claimed ahead given back
    assert statuses(cfg) == {"sending": 2, "pending": 8}


def test_two_serves_fire_a_scheduled_notice_once_and_the_standby_takes_over(
    tmp_path: Path, db_url: str, tserver: TwilioServer
) -> None:
    """A notice scheduled a few seconds ahead, two `serve` processes on one database (SQLite, and
    PostgreSQL as several machines share it): one run for the firing, sent once; killing the
    lease holder makes the standby take the lease (judged by the database's clock)."""
    from notifier.scheduling.approval import approve_rule
    from notifier.storage.schema import firings, leases
    from notifier.storage.schema import runs as runs_table

    port_a, port_b = free_port(), free_port()
    cfg = sms_project(tmp_path, db_url, tserver, port_a, "[schedule]\nlease_seconds = 3\n")
    soon = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(seconds=8)).replace(
        microsecond=0, tzinfo=None
    )
    rule_file = tmp_path / "rules" / "farm-subsidy-2026.yaml"
    rule_file.write_text(
        rule_file.read_text(encoding="utf-8").replace(
            "schedule: {once: 2026-04-01T09:00}", f"schedule: {{once: {soon.isoformat()}}}"
        ),
        encoding="utf-8",
    )
    app = App.open(cfg)
    import_residents(app, cfg.parent / "p.csv")
    for who in ("reviewer1", "reviewer2"):
        approve_rule(app, rule(app), who)
    app.close()
    a = start_serve(cfg, port_a)
    b = start_serve(cfg, port_b)
    try:
        wait_for(lambda: statuses(cfg).get("sent") == 10, 40, "the scheduled run to be sent")
        app = App.open(cfg)
        with app.engine.connect() as conn:
            fired = conn.execute(
                sa.select(firings.c.status, firings.c.run_id).where(firings.c.rule_id == "farm-subsidy-2026")
            ).all()
            made = conn.execute(sa.select(runs_table.c.id, runs_table.c.created_by)).all()
            holder = conn.execute(sa.select(leases.c.holder).where(leases.c.name == "scheduler")).scalar_one()
        assert [f.status for f in fired] == ["created"] and [(r.id, r.created_by) for r in made] == [
            (fired[0].run_id, "scheduler")
        ]
        assert tserver.accepted_by_recipient() == {"+86" + p: 1 for p in PHONES}
        active, standby = (a, b) if f":{a.pid}:" in holder else (b, a)
        active.kill()  # kill -9: no lease release
        active.wait()

        def taken_over() -> bool:
            with app.engine.connect() as conn:
                h = conn.execute(sa.select(leases.c.holder).where(leases.c.name == "scheduler")).scalar_one()
            return f":{standby.pid}:" in h

        wait_for(taken_over, 20, "the standby to take the scheduler lease")
        app.close()
        code, err = stop_serve(standby)
        assert code == 0, err
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()


def test_editing_a_scheduled_rule_stops_its_sends_until_approved_again(
    tmp_path: Path, sqlite_url: str, tserver: TwilioServer
) -> None:
    """Under `serve`: an approved notice fires and sends; after an edit (and SIGHUP) its next
    firing is not released, so residents added meanwhile get nothing, until the new version is
    approved."""
    from notifier.scheduling.approval import approve_rule
    from notifier.storage.schema import firings
    from notifier.storage.schema import runs as runs_table

    port = free_port()
    cfg = sms_project(tmp_path, sqlite_url, tserver, port)
    rule_file = tmp_path / "rules" / "farm-subsidy-2026.yaml"

    def schedule_in(seconds: int, old: str) -> str:
        at = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(seconds=seconds)).replace(
            microsecond=0, tzinfo=None
        )
        new = f"schedule: {{once: {at.isoformat()}}}"
        rule_file.write_text(rule_file.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
        return new

    first = schedule_in(6, "schedule: {once: 2026-04-01T09:00}")
    app = App.open(cfg)
    import_residents(app, cfg.parent / "p.csv")
    for who in ("reviewer1", "reviewer2"):
        approve_rule(app, rule(app), who)
    proc = start_serve(cfg, port)
    try:
        wait_for(lambda: statuses(cfg).get("sent") == 10, 40, "the first firing to be sent")
        # New residents, and an edit (the schedule is part of the rule): a new, unapproved version.
        late = [f"139000003{i:02d}" for i in range(1, 4)]
        roster = [
            [f"L{i}", f"李{i}", p, "", f"北村{i}号", "城关镇", "北村", "农村", "2", ""]
            for i, p in enumerate(late, 1)
        ]
        import_residents(app, write_roster(tmp_path / "late.csv", roster))
        schedule_in(4, first)
        proc.send_signal(signal.SIGHUP)

        def fired_twice() -> bool:
            with app.engine.connect() as conn:
                return (
                    len(
                        conn.execute(
                            sa.select(firings.c.id).where(firings.c.rule_id == "farm-subsidy-2026")
                        ).all()
                    )
                    == 2
                )

        wait_for(fired_twice, 30, "the edited rule's firing")
        time.sleep(1.5)  # several dispatch rounds
        with app.engine.connect() as conn:
            fired = conn.execute(
                sa.select(firings.c.status, firings.c.run_id)
                .where(firings.c.rule_id == "farm-subsidy-2026")
                .order_by(firings.c.id)
            ).all()
            made = conn.execute(sa.select(runs_table.c.status)).scalars().all()
        assert [f.status for f in fired] == ["created", "unapproved"] and fired[1].run_id is None
        assert made == ["completed"] and statuses(cfg) == {"sent": 10}
        assert tserver.accepted_by_recipient() == {"+86" + p: 1 for p in PHONES}  # nobody new was told
        assert not approve_rule(app, rule(app), "reviewer1").approved  # one level of two is not enough
        code, err = stop_serve(proc)
        assert code == 0, err
    finally:
        app.close()
        if proc.poll() is None:
            proc.kill()


def test_serve_writes_audit_checkpoints_periodically(
    tmp_path: Path, sqlite_url: str, tserver: TwilioServer
) -> None:
    port = free_port()
    cfg = sms_project(tmp_path, sqlite_url, tserver, port)
    cfg.write_text(
        cfg.read_text(encoding="utf-8") + "\n[audit]\ncheckpoint_interval_seconds = 1\n", encoding="utf-8"
    )
    approved_run(cfg)
    proc = start_serve(cfg, port)
    try:
        wait_for(lambda: (tmp_path / "audit-checkpoints.jsonl").exists(), 20, "a checkpoint to be written")
        code, err = stop_serve(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, err
    lines = [
        json.loads(x) for x in (tmp_path / "audit-checkpoints.jsonl").read_text().splitlines() if x.strip()
    ]
    assert lines and all(x["seq"] > 0 and len(x["hash"]) == 64 for x in lines)
