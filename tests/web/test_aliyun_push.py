"""Aliyun's pushes at `serve` over real HTTP: SmsReport receipts settle deliveries (a single send
by OutId, a batch member by OutId:number), duplicates and late receipts are recorded and
ignored, a reply 退订 / TD opts the number out, and pushes without the secret path token or from
outside the configured networks are refused and change nothing. The local Aliyun server pushes
the way Aliyun does (JSON arrays, expecting {"code":0,"msg":"成功"})."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from notifier import runs
from notifier.app import App
from notifier.residents.importer import import_residents
from notifier.storage.schema import deliveries, opt_outs

from ..support.aliyun_project import aliyun_project
from ..support.aliyun_server import AliyunServer
from ..support.campaign import ON, approve_all, audit_rows, rule, send, statuses
from ..support.project import free_port
from ..support.webserver import WebThread, start_serve, stop_serve, wait_for

TOKEN = "push-token-0123456789abcdef"
ACK = {"code": 0, "msg": "成功"}


@pytest.fixture
def server() -> Iterator[AliyunServer]:
    with AliyunServer() as s:
        yield s


def by_phone(app: App) -> dict[str, Any]:
    with app.engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries).where(deliveries.c.channel == "sms"))
        return {r.recipient[3:]: r for r in rows}


def project(tmp_path: Path, db_url: str, server: AliyunServer, people: int, **aliyun: Any) -> Path:
    return aliyun_project(
        tmp_path, db_url, server, people=people, aliyun={"receipt_token": "env:PUSH_TOKEN"} | aliyun
    )


@pytest.fixture(params=[True, False], ids=["batch", "one-by-one"])
def sent(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_url: str,
    server: AliyunServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[App, WebThread]]:
    """Four SMS sent through Aliyun (one SendBatchSms, or four SendSms), and the web app."""
    monkeypatch.setenv("PUSH_TOKEN", TOKEN)
    app = App.open(project(tmp_path, sqlite_url, server, 4, batch=request.param))
    try:
        import_residents(app, tmp_path / "p.csv")
        run_id = runs.create_run(app, rule(app), ON, "clerk").run
        approve_all(app, run_id)
        assert send(app, run_id).sent == 4
        assert [c[0] for c in server.calls] == (["SendBatchSms"] if request.param else ["SendSms"] * 4)
        with WebThread(app, free_port()) as web:
            yield app, web
    finally:
        app.close()


def test_receipts_settle_batch_members_and_single_sends(
    sent: tuple[App, WebThread], server: AliyunServer
) -> None:
    app, web = sent
    url = f"{web.url}/aliyun/status/{TOKEN}"
    rows = by_phone(app)
    assert all(r.status == "sent" for r in rows.values())
    status, answer = server.sync(server.push_reports(url, server.messages))
    assert (status, answer) == (200, ACK)
    assert {r.status for r in by_phone(app).values()} == {"delivered"}
    outcomes = [p["outcome"] for _, p in audit_rows(app, "delivery.receipt")]
    assert outcomes.count("applied") == 4


def test_duplicate_and_late_receipts_are_recorded_and_ignored(
    sent: tuple[App, WebThread], server: AliyunServer
) -> None:
    app, web = sent
    url = f"{web.url}/aliyun/status/{TOKEN}"
    first = server.messages[0]
    assert server.sync(server.push_reports(url, [first], duplicate=True)) == (200, ACK)
    assert server.sync(server.push_reports(url, [first], success=False)) == (200, ACK)  # late, out of order
    row = by_phone(app)[first.phone]
    assert row.status == "delivered"
    outcomes = [p["outcome"] for s, p in audit_rows(app, "delivery.receipt") if s == f"delivery:{row.id}"]
    assert outcomes == ["applied", "duplicate", "late"]


def test_an_undelivered_receipt_keeps_the_carrier_code(
    sent: tuple[App, WebThread], server: AliyunServer
) -> None:
    app, web = sent
    m = server.messages[1]
    items = [server.report(m, success=False, err_code="MK:0001")]
    assert server.sync(server.push(f"{web.url}/aliyun/status/{TOKEN}", items)) == (200, ACK)
    row = by_phone(app)[m.phone]
    assert (row.status, row.error_code) == ("undelivered", "MK:0001")
    assert "号码不存在" in row.reason


def test_pushes_without_the_token_change_nothing(sent: tuple[App, WebThread], server: AliyunServer) -> None:
    app, web = sent
    before = {p: r.status for p, r in by_phone(app).items()}
    for path in (f"/aliyun/status/{TOKEN}x", "/aliyun/status/guess", f"/aliyun/inbound/{TOKEN[:-1]}"):
        status, _ = server.sync(server.push_reports(web.url + path, server.messages))
        assert status == 403, path
    status, _ = server.sync(server.push_reports(web.url + "/aliyun/status", server.messages))
    assert status in (404, 405)
    assert {p: r.status for p, r in by_phone(app).items()} == before


def test_a_reply_td_opts_the_number_out(sent: tuple[App, WebThread], server: AliyunServer) -> None:
    app, web = sent
    url = f"{web.url}/aliyun/inbound/{TOKEN}"
    assert server.sync(server.push_reply(url, "13800000002", "TD")) == (200, ACK)
    assert server.sync(server.push_reply(url, "13800000003", "谢谢")) == (200, ACK)
    assert server.sync(server.push_reply(url, "13800000001", " 退订 ")) == (200, ACK)
    with app.engine.connect() as conn:
        listed = set(conn.execute(sa.select(opt_outs.c.phone)).scalars())
    assert listed == {"+8613800000002", "+8613800000001"}


def test_pushes_from_outside_the_configured_networks_are_refused(
    tmp_path: Path, sqlite_url: str, server: AliyunServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUSH_TOKEN", TOKEN)
    app = App.open(project(tmp_path, sqlite_url, server, 1, receipt_networks=["10.0.0.0/8"]))
    try:
        with WebThread(app, free_port()) as web:
            status, _ = server.sync(
                server.push_reply(f"{web.url}/aliyun/inbound/{TOKEN}", "13800000001", "TD")
            )
            assert status == 403
        with app.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(opt_outs)).scalar_one() == 0
    finally:
        app.close()


def test_a_serve_process_sends_through_aliyun_and_takes_its_receipts(
    tmp_path: Path, sqlite_url: str, server: AliyunServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUSH_TOKEN", TOKEN)
    port = free_port()
    serve = f"[serve]\nport = {port}\ndispatch_interval_seconds = 0.2\n"
    cfg = aliyun_project(
        tmp_path, sqlite_url, server, people=5, aliyun={"receipt_token": "env:PUSH_TOKEN"}, extra=serve
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
        assert [c[:2] for c in server.calls] == [("SendBatchSms", 5)]
        url = f"http://127.0.0.1:{port}/aliyun/status/{TOKEN}"
        assert server.sync(server.push_reports(url, server.messages)) == (200, ACK)
        wait_for(lambda: statuses(cfg).get("delivered") == 5, 30, "the receipts to apply")
    finally:
        code, err = stop_serve(proc)
    assert code == 0, err
