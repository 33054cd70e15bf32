"""Tencent's callbacks at a real `notifier serve` process that also sends: the run goes out
through its dispatcher (namesakes in one SendSms), status reports pushed by the local Tencent
server settle those deliveries by SerialNo, and a 退订 reply opts the number out so the next run
leaves it alone. (The callbacks' parsing, refusals, duplicates and late reports are in
tests/channels/test_tencent_webhooks.py, against the same web app in a thread.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from notifier import runs
from notifier.app import App
from notifier.residents.importer import import_residents
from notifier.storage.schema import deliveries, opt_outs

from ..support.campaign import ON, approve_all, audit_rows, rule, statuses
from ..support.project import free_port
from ..support.tencent_project import tencent_project
from ..support.tencent_server import TencentServer
from ..support.webserver import start_serve, stop_serve, wait_for

TOKEN = "cb-serve-5a4b3c2d1e0f9a8b"
ACK = json.dumps({"result": 0, "errmsg": "OK"}, separators=(",", ":"))


@pytest.fixture
def server() -> Iterator[TencentServer]:
    with TencentServer() as s:
        yield s


def test_a_serve_process_sends_through_tencent_and_takes_its_callbacks(
    tmp_path: Path, sqlite_url: str, server: TencentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENCENT_SMS_CALLBACK_TOKEN", TOKEN)
    port = free_port()
    serve = f"[serve]\nport = {port}\ndispatch_interval_seconds = 0.2\n"
    table = {"callback_token": "env:TENCENT_SMS_CALLBACK_TOKEN"}
    cfg = tencent_project(
        tmp_path, sqlite_url, server, people=5, names=["李同"] * 5, tencent=table, extra=serve
    )
    app = App.open(cfg)
    try:
        import_residents(app, tmp_path / "p.csv")
        approve_all(app, runs.create_run(app, rule(app), ON, "clerk").run)
    finally:
        app.close()
    proc = start_serve(cfg, port)
    try:
        wait_for(lambda: statuses(cfg).get("sent") == 5, 30, "the run to be sent")
        assert [(c.action, len(c.numbers)) for c in server.calls] == [("SendSms", 5)]
        base = f"http://127.0.0.1:{port}/tencent"
        reports = [server.report(m.serial_no) for m in server.messages[:4]]
        reports.append(server.report(server.messages[4].serial_no, "FAIL", "002"))
        assert server.sync(server.send_reports(f"{base}/status/{TOKEN}", reports)) == [(200, ACK)]
        wait_for(lambda: statuses(cfg) == {"delivered": 4, "undelivered": 1}, 30, "the reports to apply")
        assert server.sync(server.send_reply(f"{base}/inbound/{TOKEN}", "+8613800000002", "退订")) == (
            200,
            ACK,
        )
        assert server.sync(server.send_reply(f"{base}/inbound/guess", "+8613800000003", "TD"))[0] == 403
    finally:
        code, err = stop_serve(proc)
    assert code == 0, err
    app = App.open(cfg)
    try:
        with app.engine.connect() as conn:
            assert set(conn.execute(sa.select(opt_outs.c.phone)).scalars()) == {"+8613800000002"}
            query = sa.select(deliveries.c.recipient, deliveries.c.provider_message_id).where(
                deliveries.c.channel == "sms"
            )
            serials = dict(conn.execute(query).tuples().all())
        assert serials == {m.phone: m.serial_no for m in server.messages}
        assert [p["outcome"] for _, p in audit_rows(app, "delivery.receipt")] == ["applied"] * 5
        # the next run does not text the opted-out number: that resident gets a letter
        second = runs.create_run(app, rule(app), ON, "clerk").run
        with app.engine.connect() as conn:
            channels = dict(
                conn.execute(
                    sa.select(deliveries.c.resident_id, deliveries.c.channel).where(
                        deliveries.c.run_id == second
                    )
                )
                .tuples()
                .all()
            )
    finally:
        app.close()
    assert channels.pop("A000002") == "letter" and set(channels.values()) == {"sms"}
