"""The dispatcher sending a real run through the local Tencent server with the rule's registered
template: variables rendered at run creation, stored and sent in {1}..{n} order; only residents
with identical values share a SendSms (one TemplateParamSet per request), each delivery still
settling on its own with its SerialNo; an account-level refusal pausing Tencent for everyone
while the next provider takes over; a lost answer looked up, never resent; per-number spacing."""

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
from notifier.cli import main
from notifier.delivery.dispatch import Dispatcher
from notifier.residents.importer import import_residents
from notifier.storage.schema import deliveries, run_messages
from notifier.web import prometheus_text

from ..support.campaign import NOON, ON, approve_all, audit_rows, rule
from ..support.tencent_project import SIGN, TEMPLATE_ID, tencent_project
from ..support.tencent_server import Fault, TencentServer


@pytest.fixture
def server() -> Iterator[TencentServer]:
    with TencentServer() as s:
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
            conn.execute(
                sa.select(deliveries)
                .where(deliveries.c.run_id == run_id, deliveries.c.channel == "sms")
                .order_by(deliveries.c.id)
            )
        )


def sends(server: TencentServer) -> list[list[str]]:
    """The numbers of each SendSms the server answered."""
    return [c.numbers for c in server.calls if c.action == "SendSms"]


def test_rules_check_proves_the_registered_text(
    tmp_path: Path, sqlite_url: str, server: TencentServer, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tencent_project(tmp_path, sqlite_url, server, people=1)
    rule_file = tmp_path / "rules" / "farm-subsidy-2026.yaml"
    check = ["--config", str(cfg), "rules", "check", str(rule_file), "--json"]
    assert main(check) == 0, capsys.readouterr().out
    capsys.readouterr()
    text = rule_file.read_text(encoding="utf-8")
    rule_file.write_text(text.replace("每亩{3}，预计{4}", "每亩{4}，预计{3}"), encoding="utf-8")
    assert main(check) == 1  # {4} written where {3} belongs: not what is sent
    [error] = json.loads(capsys.readouterr().out)["errors"]
    assert "sms_templates.tencent.text filled in is not what the SMS template renders" in error["message"]


def test_the_variables_are_rendered_stored_and_sent_in_order(
    tmp_path: Path, db_url: str, server: TencentServer
) -> None:
    app, run_id = approved(tencent_project(tmp_path, db_url, server, people=2))
    try:
        with app.engine.connect() as conn:
            stored = conn.execute(
                sa.select(run_messages.c.resident_id, run_messages.c.body, run_messages.c.templates)
                .where(run_messages.c.run_id == run_id, run_messages.c.channel == "sms")
                .order_by(run_messages.c.resident_id)
            ).all()
        first = stored[0]
        templates = first.templates if isinstance(first.templates, dict) else json.loads(first.templates)
        assert templates["tencent"]["code"] == TEMPLATE_ID and templates["tencent"]["sign"] == SIGN
        assert templates["tencent"]["params"] == [
            ["1", "李1"],
            ["2", "2"],
            ["3", "¥110.00"],
            ["4", "¥220.00"],
        ]
        report = send(app, run_id)
        assert report.sent == 2 and report.failed == 0
        by_phone = {m.phone: m for m in server.messages}
        got = by_phone["+8613800000001"]
        assert got.params == ["李1", "2", "¥110.00", "¥220.00"]  # TemplateParamSet, {1} first
        assert (got.template_id, got.sign) == (TEMPLATE_ID, SIGN)
        assert got.content == first.body  # exactly what the approvers saw
        assert sorted(sends(server)) == [["+8613800000001"], ["+8613800000002"]]  # 2 names: 2 requests
    finally:
        app.close()


def test_identical_values_share_one_request_and_a_bad_number_settles_alone(
    tmp_path: Path, db_url: str, server: TencentServer
) -> None:
    # five namesakes with the same land (identical values) and one resident of another name
    names = ["李同"] * 5 + ["王异"]
    app, run_id = approved(tencent_project(tmp_path, db_url, server, people=6, names=names))
    try:
        server.fail_number("+8613800000003", "InvalidParameterValue.IncorrectPhoneNumber")
        report = send(app, run_id)
        assert report.failed == 1 and report.by_channel == {"sms": 5, "letter": 1}  # falls back to a letter
        numbers = sorted(sends(server), key=len)
        assert numbers == [["+8613800000006"], [f"+861380000000{i}" for i in range(1, 6)]]
        [shared] = [c for c in server.calls if len(c.numbers) == 5]
        assert shared.params["TemplateParamSet"] == ["李同", "2", "¥110.00", "¥220.00"]
        got = {r.recipient: r for r in rows(app, run_id)}
        bad = got.pop("+8613800000003")
        assert (bad.status, bad.error_code) == ("failed", "InvalidParameterValue.IncorrectPhoneNumber")
        serials = {m.phone: m.serial_no for m in server.messages}
        assert {p: (r.status, r.provider_message_id) for p, r in got.items()} == {
            p: ("sent", serials[p]) for p in got
        }
        assert len(set(serials.values())) == 5 and server.accepted_by_recipient().most_common(1)[0][1] == 1
        moved = {s for s, p in audit_rows(app, "delivery.status") if p.get("to") == "sent"}
        assert moved >= {f"delivery:{r.id}" for r in got.values()}
    finally:
        app.close()


def test_messages_with_different_values_are_separate_requests_side_by_side(
    tmp_path: Path, sqlite_url: str, server: TencentServer
) -> None:
    app, run_id = approved(tencent_project(tmp_path, sqlite_url, server, people=4))
    try:
        server.fail_next(*[Fault.slow(0.6)] * 4)  # every answer takes 0.6 s
        report = send(app, run_id)
        assert report.sent == 4 and len(sends(server)) == 4
        arrived = [m.received for m in server.messages]
        assert max(arrived) - min(arrived) < 0.4, arrived  # in flight together, not one after another
    finally:
        app.close()


def test_an_account_refusal_pauses_tencent_and_the_next_provider_takes_over(
    tmp_path: Path, db_url: str, server: TencentServer
) -> None:
    cfg = tencent_project(
        tmp_path, db_url, server, people=5, providers='["tencent", "outbox"]', names=["李同"] * 5
    )
    app, run_id = approved(cfg)
    try:
        server.fail_next(Fault.error("FailedOperation.InsufficientBalanceInSmsPackage"))
        report = send(app, run_id)
        got = rows(app, run_id)
        assert report.failed == 0 and report.by_channel == {"sms": 5}
        assert {(r.status, r.provider, r.attempts) for r in got} == {("delivered", "outbox", 1)}
        assert server.messages == [] and len(server.calls) == 1  # tried once, then left alone
        [(subject, paused)] = audit_rows(app, "provider.paused")
        assert subject == "channel:sms" and paused["provider"] == "tencent" and paused["next"] == "outbox"
        assert paused["code"] == "FailedOperation.InsufficientBalanceInSmsPackage"
        assert "余量不足" in paused["reason"]
        assert 'notifier_provider_paused_until_timestamp_seconds{provider="tencent"}' in prometheus_text(app)
    finally:
        app.close()


def test_with_no_other_provider_the_channel_waits_and_nobody_fails(
    tmp_path: Path, sqlite_url: str, server: TencentServer
) -> None:
    # three names: three requests, one at a time, the two behind the refused one waiting their turn
    cfg = tencent_project(tmp_path, sqlite_url, server, people=3, tencent={"concurrency": 1})
    app, run_id = approved(cfg)
    try:
        server.fail_next(Fault.error("UnauthorizedOperation.ServiceSuspendDueToArrears"))
        report = send(app, run_id)
        assert report.failed == 0 and report.sent == 0 and report.remaining == 3
        states = sorted((r.status, r.attempts, r.error_code) for r in rows(app, run_id))
        assert states == [
            ("pending", 0, "UnauthorizedOperation.ServiceSuspendDueToArrears"),
            ("pending", 0, "paused"),
            ("pending", 0, "paused"),
        ]
        assert len(server.calls) == 1  # the paused provider is not hammered, not even by those queued
    finally:
        app.close()


def test_a_timed_out_request_is_reconciled_by_lookup_not_resent(
    tmp_path: Path, db_url: str, server: TencentServer
) -> None:
    cfg = tencent_project(tmp_path, db_url, server, people=4, tencent={"timeout": 0.5}, names=["李同"] * 4)
    app, run_id = approved(cfg)
    try:
        server.fail_next(Fault.slow(2.0))  # Tencent takes the request, the answer comes too late
        server.fail_reads(1)  # and the first lookup fails: looked up again, still not resent
        report = send(app, run_id)
        assert report.failed == 0 and report.reconciled == 4 and report.sent == 0
        assert sends(server) == [[f"+861380000000{i}" for i in range(1, 5)]]  # one SendSms, never again
        pulls = [c for c in server.calls if c.action == "PullSmsSendStatusByPhoneNumber"]
        # each number looked up, the failed lookup tried again; a lookup that comes before
        # Tencent has recorded the late request finds nothing and is repeated (timing-dependent)
        assert pulls[0].answer == "InternalError" and len(pulls) >= 5
        assert {c.params["PhoneNumber"] for c in pulls} == {f"+861380000000{i}" for i in range(1, 5)}
        serials = {m.phone: m.serial_no for m in server.messages}
        assert {(r.status, r.provider_message_id) for r in rows(app, run_id)} == {
            ("sent", serials[p]) for p in serials
        }
        assert server.accepted_by_recipient().most_common(1)[0][1] == 1
    finally:
        app.close()


def test_several_notices_to_one_number_are_spaced_not_refused(
    tmp_path: Path, sqlite_url: str, server: TencentServer
) -> None:
    # a household: three residents share one number (the fourth has its own); their notices
    # differ by name (identical texts to one number are one notice since issue 14), so each
    # of the three must wait its turn at the number
    phones = ["13800000001"] * 3 + ["13800000004"]
    cfg = tencent_project(
        tmp_path,
        sqlite_url,
        server,
        phones=phones,
        names=["李同", "李同一", "李同二", "李同三"],
        tencent={"per_number_seconds": 0.4},
    )
    app, run_id = approved(cfg)
    try:
        started = time.monotonic()
        clock = lambda: NOON + timedelta(seconds=time.monotonic() - started)  # noqa: E731
        report = asyncio.run(
            Dispatcher(app, providers_for(app.config), now=clock).run(run_id, until_idle=True)
        )
        assert report.sent == 4 and report.failed == 0 and report.retried == 0
        times = sorted(m.received for m in server.messages if m.phone == "+8613800000001")
        assert len(times) == 3
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert min(gaps) >= 0.35, gaps  # one at a time, 0.4 s apart
        assert all(c.answer == "Ok" for c in server.calls)
    finally:
        app.close()
