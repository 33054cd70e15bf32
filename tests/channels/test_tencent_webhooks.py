"""Tencent's status and reply callbacks at the real web app (uvicorn on 127.0.0.1), pushed by the
Tencent-compatible server the way Tencent pushes them (JSON, no signature) to URLs ending in the
secret token: reports settle the deliveries sent through TencentProvider by SerialNo, repeats and
late reports change nothing, 退订 / TD replies opt the number out, and pushes without the token,
with a wrong one or from outside the configured networks are refused and touch nothing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from notifier.app import App
from notifier.audit.pseudonyms import subject_of_phone
from notifier.channels.base import OutboundMessage, SendResult
from notifier.channels.registry import build_provider
from notifier.channels.templated import TemplateCall
from notifier.clock import utcnow
from notifier.delivery.transitions import Move, move_each
from notifier.status import Channel, DeliveryStatus
from notifier.storage.schema import audit_events, deliveries, opt_outs
from tests.support.campaign import audit_rows
from tests.support.project import free_port, write_config
from tests.support.rows import bare_run
from tests.support.tencent_server import SDK_APP_ID, SECRET_ID, SECRET_KEY, SIGN, TEMPLATE_ID, TencentServer
from tests.support.webserver import WebThread

TOKEN = "cb-9f8e7d6c5b4a39281706"
FAR_TOKEN = "cb-far-0011223344556677"
NEAR_TOKEN = "cb-near-8899aabbccddeeff"
ACK = {"result": 0, "errmsg": "OK"}


@dataclass
class Sent:
    app: App
    server: TencentServer
    base: str  # the web app's URL
    serials: dict[int, str]  # delivery id -> SerialNo

    def status_url(self, token: str = TOKEN) -> str:
        return f"{self.base}/tencent/status/{token}"

    def inbound_url(self, token: str = TOKEN) -> str:
        return f"{self.base}/tencent/inbound/{token}"

    def rows(self) -> dict[int, Any]:
        with self.app.engine.connect() as conn:
            return {r.id: r for r in conn.execute(sa.select(deliveries))}

    def audit_count(self) -> int:
        with self.app.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(audit_events)).scalar_one())


def _config(tmp_path: Path, sqlite_url: str, endpoint: str) -> Path:
    """Three Tencent accounts: `tencent` (its token from the environment), `tencent_far`, whose
    pushes are believed only from 10.9.0.0/16, and `tencent_near`, only from 127.0.0.0/8."""
    tables = f"""
[providers.tencent]
secret_id = "{SECRET_ID}"
secret_key = "{SECRET_KEY}"
sdk_app_id = "{SDK_APP_ID}"
protocol = "http"
endpoint = "{endpoint}"
callback_token = "env:TENCENT_SMS_CALLBACK_TOKEN"

[providers.tencent_far]
kind = "tencent"
secret_id = "{SECRET_ID}"
secret_key = "{SECRET_KEY}"
sdk_app_id = "{SDK_APP_ID}"
callback_token = "{FAR_TOKEN}"
source_networks = ["10.9.0.0/16"]

[providers.tencent_near]
kind = "tencent"
secret_id = "{SECRET_ID}"
secret_key = "{SECRET_KEY}"
sdk_app_id = "{SDK_APP_ID}"
callback_token = "{NEAR_TOKEN}"
source_networks = ["127.0.0.0/8"]
"""
    return write_config(tmp_path, sqlite_url, tables)


async def _send(app: App, server: TencentServer, ids: list[int]) -> dict[int, str]:
    """Send the deliveries in one SendSms through TencentProvider and record them `sent` with
    their SerialNo, as the dispatcher would (through delivery.transitions)."""
    provider = build_provider(app.config, "tencent")
    with app.engine.connect() as conn:
        recipients = dict(conn.execute(sa.select(deliveries.c.id, deliveries.c.recipient)).tuples().all())
    call = TemplateCall(TEMPLATE_ID, SIGN, (("name", "居民"), ("amount", "100.00")))
    messages = [
        OutboundMessage(i, 1, Channel.SMS, f"R{i}", recipients[i], "居民", "", templates={"tencent": call})
        for i in ids
    ]
    try:
        results = await provider.send_batch(messages)
    finally:
        await provider.close()
    assert len(server.calls) == 1
    serials = {}
    for m, r in zip(messages, results, strict=True):
        assert isinstance(r, SendResult)
        serials[m.delivery_id] = str(r.provider_message_id)
    now = utcnow()
    with app.engine.begin() as conn:
        sending = [Move(i, DeliveryStatus.SENDING) for i in ids]
        move_each(conn, sending, from_=DeliveryStatus.PENDING, actor="t", now=now)
        values = {i: {"provider": "tencent", "provider_message_id": serials[i]} for i in ids}
        sent = [Move(i, DeliveryStatus.SENT, values=values[i]) for i in ids]
        move_each(conn, sent, from_=DeliveryStatus.SENDING, actor="t", now=now)
    return serials


@pytest.fixture
async def sent(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Sent]:
    """Four SMS sent through Tencent and recorded `sent`, and the web app listening for callbacks."""
    monkeypatch.setenv("TENCENT_SMS_CALLBACK_TOKEN", TOKEN)
    async with TencentServer() as server:
        app = App.open(_config(tmp_path, sqlite_url, server.endpoint))
        try:
            _, ids = bare_run(app, 4)
            serials = await _send(app, server, ids)
            with WebThread(app, free_port()) as web:
                yield Sent(app, server, web.url, serials)
        finally:
            app.close()


def _receipts(app: App) -> list[tuple[str, str, str]]:
    return [(e["provider_status"], e["outcome"], e["to"]) for _, e in audit_rows(app, "delivery.receipt")]


async def test_reports_settle_deliveries_by_serial_no_and_repeats_change_nothing(sent: Sent) -> None:
    a, b, c, d = sorted(sent.serials)
    s = sent.server
    reports = [s.report(sent.serials[a]), s.report(sent.serials[b]), s.report(sent.serials[c], "FAIL", "002")]
    [(status, body)] = await s.send_reports(sent.status_url(), reports)  # several reports in one push
    assert (status, json.loads(body)) == (200, ACK)
    rows = sent.rows()
    assert [rows[i].status for i in (a, b, c, d)] == ["delivered", "delivered", "undelivered", "sent"]
    assert rows[c].error_code == "002" and "关机" in rows[c].reason
    assert _receipts(sent.app) == [
        ("SUCCESS", "applied", "delivered"),
        ("SUCCESS", "applied", "delivered"),
        ("FAIL", "applied", "undelivered"),
    ]
    [(status, _)] = await s.send_reports(sent.status_url(), reports, duplicate=True, out_of_order=True)
    late = s.report(sent.serials[a], "FAIL", "002")  # overtaken on the way: arrives after SUCCESS
    answers = await s.send_reports(sent.status_url(), [late], one_call=False)
    assert status == 200 and answers == [(200, json.dumps(ACK, separators=(",", ":")))]
    assert [r.status for r in sent.rows().values()] == ["delivered", "delivered", "undelivered", "sent"]
    outcomes = [o for _, o, _ in _receipts(sent.app)[3:]]
    assert outcomes == ["duplicate"] * 6 + ["late"]


async def test_a_report_for_no_delivery_is_answered_404_and_recorded(sent: Sent) -> None:
    report = {"report_status": "SUCCESS", "errmsg": "DELIVRD", "sid": "2433:nobody", "mobile": "13800000009"}
    [(status, body)] = await sent.server.send_reports(sent.status_url(), [report])
    assert status == 404 and "2433:nobody" in body  # Tencent pushes it again later
    [(subject, event)] = audit_rows(sent.app, "delivery.receipt")
    assert (subject, event["outcome"], event["message_sid"]) == (
        "receipt:2433:nobody",
        "unmatched",
        "2433:nobody",
    )
    assert {r.status for r in sent.rows().values()} == {"sent"}


async def test_believed_but_malformed_pushes_are_400_with_a_reason(sent: Sent) -> None:
    before = sent.audit_count()
    serial = next(iter(sent.serials.values()))
    for body, words in [
        ([{"report_status": "ARRIVED", "sid": serial}], "unknown report_status"),
        ([{"report_status": "SUCCESS"}], "without sid"),
        ([], "no reports"),
        (["text"], "JSON object"),
    ]:
        status, _, text = _post_json(sent.status_url(), body)
        assert status == 400 and words in text, (body, text)
    assert sent.audit_count() == before and {r.status for r in sent.rows().values()} == {"sent"}


def _post_json(url: str, body: Any) -> tuple[int, str, str]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


async def test_pushes_without_the_token_or_from_elsewhere_are_refused_and_touch_nothing(sent: Sent) -> None:
    before = sent.audit_count()
    s = sent.server
    report = [s.report(next(iter(sent.serials.values())))]
    for url, words in [
        (f"{sent.base}/tencent/status", "missing callback token"),
        (sent.status_url("not-the-token"), "invalid callback token"),
        (sent.status_url(TOKEN[:-1]), "invalid callback token"),
        (sent.status_url(FAR_TOKEN), "source address not allowed"),  # right token, wrong network
        (sent.inbound_url("not-the-token"), "invalid callback token"),
    ]:
        [(status, body)] = await s.send_reports(url, report)
        assert status == 403 and words in body, (url, body)
    assert sent.audit_count() == before and {r.status for r in sent.rows().values()} == {"sent"}
    [(status, _)] = await s.send_reports(sent.status_url(NEAR_TOKEN), report)  # 127.0.0.1 is near
    assert status == 200
    [(_, event)] = audit_rows(sent.app, "delivery.receipt")
    assert event["outcome"] == "applied"


async def test_td_replies_opt_the_number_out(sent: Sent) -> None:
    s = sent.server
    first, second, third = sorted(sent.rows().values(), key=lambda r: r.id)[:3]
    assert await s.send_reply(sent.inbound_url(), first.recipient, " 退订 ") == (
        200,
        json.dumps(ACK, separators=(",", ":")),
    )
    assert (await s.send_reply(sent.inbound_url(), first.recipient, "TD"))[0] == 200  # again: no change
    assert (await s.send_reply(sent.inbound_url(), second.recipient, "请问补贴什么时候到？退订"))[0] == 200
    assert (await s.send_reply(sent.inbound_url(), third.recipient, "ｔｄ"))[0] == 200
    with sent.app.engine.connect() as conn:
        listed = set(conn.execute(sa.select(opt_outs.c.phone)).scalars())
    assert listed == {first.recipient, third.recipient}  # a question that mentions 退订 is not one
    assert [subject for subject, _ in audit_rows(sent.app, "optout.added")] == [
        subject_of_phone(sent.app.engine, sent.app.config, first.recipient),
        subject_of_phone(sent.app.engine, sent.app.config, third.recipient),
    ]
    assert len(audit_rows(sent.app, "optout.repeated")) == 1
    assert (await s.send_reply(sent.inbound_url("nope"), second.recipient, "TD"))[0] == 403
