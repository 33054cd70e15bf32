"""SMTP against a real aiosmtpd server on 127.0.0.1 that misbehaves on purpose: a 421/4xx answer
or a connection closed before the message was written is transient (retried on a fresh
connection, never `unknown`); only a connection lost after the final "." is ambiguous, and
`notifier send --resolve-unknown` settles such rows, audited, so the run can complete."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from notifier import runs
from notifier.app import App
from notifier.channels.base import OutboundMessage
from notifier.channels.smtp import SmtpProvider
from notifier.cli import main
from notifier.errors import ProviderError
from notifier.residents.importer import import_residents
from notifier.status import Channel
from notifier.storage.schema import audit_events, deliveries
from tests.support.campaign import (
    ON,
    PEOPLE,
    approve_all,
    by_resident,
    rule,
    send,
    smtp_project,
    write_roster,
)
from tests.support.smtp_server import CLOSE_SOON, SmtpServer


def message(i: int) -> OutboundMessage:
    return OutboundMessage(
        delivery_id=i,
        run_id=1,
        channel=Channel.EMAIL,
        resident_id=f"R{i}",
        recipient=f"r{i}@example.com",
        recipient_name=f"居民{i}",
        body=f"第{i}封\n.以点开头的一行\n",
        subject=f"通知 {i}",
    )


def provider(port: int) -> SmtpProvider:
    return SmtpProvider("smtp", {"port": port, "connections": 1, "timeout": 5})


TRANSIENT = [
    "421@MAIL",
    "close@MAIL",
    "451@RCPT",
    "421@RCPT",
    "close@RCPT",
    "close@DATA",
    "421@END",
    "451@END",
]


@pytest.mark.parametrize("fault", TRANSIENT)
def test_refusals_and_drops_before_the_message_are_transient(smtp: SmtpServer, fault: str) -> None:
    smtp.plan = [fault]

    async def go() -> ProviderError:
        p = provider(smtp.port)
        try:
            with pytest.raises(ProviderError) as first:
                await p.send(message(1))
            await asyncio.sleep(0.05)  # the server's close after a 421 has landed
            assert (await p.send(message(1))).provider_message_id  # the next attempt, on a fresh connection
            return first.value
        finally:
            await p.close()

    err = asyncio.run(go())
    assert (err.retryable, err.ambiguous) == (True, False), err
    assert err.code in ("421", "451", "connection")
    assert len(smtp.messages) == 1 and "以点开头" in smtp.messages[0].get_content()


def test_an_idle_connection_the_server_dropped_is_replaced_at_once(smtp: SmtpServer) -> None:
    smtp.plan = ["drop@END"]

    async def go() -> None:
        p = provider(smtp.port)
        try:
            await p.send(message(1))
            await asyncio.sleep(CLOSE_SOON * 3)  # the pooled connection is closed by now
            await p.send(message(2))  # no error: sent on a fresh connection
        finally:
            await p.close()

    asyncio.run(go())
    assert [m["Subject"] for m in smtp.messages] == ["通知 1", "通知 2"]


def test_a_connection_lost_after_the_final_dot_is_ambiguous(smtp: SmtpServer) -> None:
    smtp.plan = ["close@END"]

    async def go() -> ProviderError:
        p = provider(smtp.port)
        try:
            with pytest.raises(ProviderError) as lost:
                await p.send(message(1))
            return lost.value
        finally:
            await p.close()

    err = asyncio.run(go())
    assert (err.ambiguous, err.retryable, err.code) == (True, False, "connection")
    assert len(smtp.messages) == 1  # the server did take it


# -- through the dispatcher and the command line -----------------------------------------------
@pytest.fixture
def fapp(tmp_path: Path, db_url: str, smtp: SmtpServer) -> Iterator[App]:
    cfg = smtp_project(tmp_path, db_url, smtp.port)
    a = App.open(cfg)
    import_residents(a, write_roster(tmp_path / "p.csv", PEOPLE))
    yield a
    a.close()


def email_rows(app: App, run_id: int) -> dict[str, Any]:
    return {k: v for k, v in by_resident(app, run_id).items() if v.channel == "email"}


def status_changes(app: App, delivery_id: int) -> list[tuple[str, str, str]]:
    with app.engine.connect() as conn:
        return [
            (actor, json.loads(p)["from"], json.loads(p)["to"])
            for actor, p in conn.execute(
                sa.select(audit_events.c.actor, audit_events.c.payload)
                .where(
                    audit_events.c.subject == f"delivery:{delivery_id}",
                    audit_events.c.action == "delivery.status",
                )
                .order_by(audit_events.c.seq)
            )
        ]


def cli(app: App, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    code = main(["--config", str(app.config.path), *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def test_a_send_through_faults_before_the_message_never_ends_unknown(fapp: App, smtp: SmtpServer) -> None:
    smtp.plan = ["421@MAIL", "close@RCPT", "close@DATA"]
    run_id = runs.create_run(fapp, rule(fapp), ON, "clerk").run
    approve_all(fapp, run_id)
    report = send(fapp, run_id)
    assert (report.unknown, report.failed, report.remaining, report.by_channel.get("email")) == (0, 0, 0, 2)
    assert report.retried == 3 and smtp.plan == []
    assert {r.status for r in email_rows(fapp, run_id).values()} == {"sent"}
    assert sorted(str(m["To"].addresses[0].addr_spec) for m in smtp.messages) == [
        "wang2@example.com",
        "wang5@example.com",
    ]
    assert runs.show_run(fapp, run_id)["status"] == "completed"


@pytest.mark.parametrize("decision", ["sent", "resend"])
def test_unknown_email_is_settled_by_resolve_unknown(
    fapp: App, smtp: SmtpServer, decision: str, capsys: pytest.CaptureFixture[str]
) -> None:
    smtp.plan = ["close@END"]
    run_id = runs.create_run(fapp, rule(fapp), ON, "clerk").run
    approve_all(fapp, run_id)
    report = send(fapp, run_id)
    assert (report.unknown, report.by_channel.get("email")) == (1, 1)
    unknown = next(r for r in email_rows(fapp, run_id).values() if r.status == "unknown")
    assert runs.show_run(fapp, run_id)["status"] == "approved"  # an open outcome keeps the run open
    with fapp.engine.connect() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one()

    code, out, _ = cli(
        fapp,
        "send",
        "--resolve-unknown",
        str(run_id),
        "--as",
        decision,
        "--by",
        "auditor",
        "--json",
        capsys=capsys,
    )
    assert code == 0
    new = "sent" if decision == "sent" else "pending"
    assert out == {
        "run": run_id,
        "as": decision,
        "resolved": 1,
        "deliveries": [unknown.id],
        "by_channel": {"email": 1},
        "run_status": "completed" if decision == "sent" else "approved",
    }
    row = email_rows(fapp, run_id)[unknown.resident_id]
    assert (row.id, row.status) == (unknown.id, new) and "auditor" in row.reason
    assert status_changes(fapp, unknown.id)[-1] == ("auditor", "unknown", new)
    # Nothing left to settle: a second call changes nothing.
    code, again, _ = cli(
        fapp,
        "send",
        "--resolve-unknown",
        str(run_id),
        "--as",
        decision,
        "--by",
        "auditor",
        "--json",
        capsys=capsys,
    )
    assert (code, again["resolved"]) == (0, 0)

    if decision == "resend":  # the same row goes out again: no second row for the resident
        assert send(fapp, run_id).sent == 1
        assert email_rows(fapp, run_id)[unknown.resident_id].status == "sent"
        assert len([m for m in smtp.messages if unknown.recipient in str(m["To"])]) == 2
        assert runs.show_run(fapp, run_id)["status"] == "completed"
    with fapp.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one() == before


def test_resolve_unknown_refuses_bad_requests(fapp: App, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(
        fapp, "send", "--resolve-unknown", "1", "--by", "auditor", capsys=capsys
    )  # --as is missing
    assert code == 2 and "--as sent|resend" in err
    code, _, err = cli(
        fapp, "send", "--resolve-unknown", "99", "--as", "sent", "--by", "auditor", capsys=capsys
    )
    assert code == 1 and "run 99" in err and "Traceback" not in err
    run_id = runs.create_run(fapp, rule(fapp), ON, "clerk").run
    runs.cancel_run(fapp, run_id, "clerk")
    code, _, err = cli(
        fapp, "send", "--resolve-unknown", str(run_id), "--as", "resend", "--by", "auditor", capsys=capsys
    )
    assert code == 1 and "cancelled" in err
