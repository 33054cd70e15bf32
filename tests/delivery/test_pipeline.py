"""The pipeline end to end: import -> run -> approvals -> send to outbox, a real SMTP server and letters."""

from __future__ import annotations

import asyncio
import csv
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from notifier import runs
from notifier.app import App
from notifier.audit import log as audit
from notifier.errors import StateError
from notifier.residents.importer import import_records, import_residents
from notifier.storage.schema import audit_events, deliveries, opt_outs
from tests.support.campaign import NOON, ON, PEOPLE, approve_all, by_resident, rule, send, write_roster
from tests.support.project import write_config
from tests.support.smtp_server import SmtpServer, body_text


def test_run_freezes_audience_with_first_reachable_channel(papp: App) -> None:
    created = runs.create_run(papp, rule(papp), ON, "clerk")
    assert (created.audience, created.review, created.skipped) == (5, 1, 1)
    d = by_resident(papp, created.run)
    assert {k: (v.channel, v.status) for k, v in d.items()} == {
        "F01": ("sms", "pending"),
        "F02": ("email", "pending"),
        "F03": ("letter", "pending"),
        "F04": ("none", "skipped"),
        "F05": ("email", "pending"),
    }
    assert d["F01"].recipient == "+8613800000001" and "no usable contact" in d["F04"].reason


def test_approval_levels_and_refusals(papp: App) -> None:
    run_id = runs.create_run(papp, rule(papp), ON, "clerk").run
    with pytest.raises(StateError, match="creator cannot approve"):
        runs.approve_run(papp, run_id, "clerk")
    out = runs.approve_run(papp, run_id, "reviewer1")
    assert out["status"] == "awaiting_approval" and out["approvals"][0]["level_name"] == "科室审核"
    with pytest.raises(StateError, match="already approved"):
        runs.approve_run(papp, run_id, "reviewer1")
    # Nothing goes out before the last level approves.
    assert send(papp).sent == 0
    assert runs.approve_run(papp, run_id, "reviewer2")["status"] == "approved"
    with pytest.raises(StateError, match="only runs awaiting approval"):
        runs.approve_run(papp, run_id, "reviewer3")


def test_send_reaches_every_channel_once(papp: App, smtp: SmtpServer, tmp_path: Path) -> None:
    run_id = runs.create_run(papp, rule(papp), ON, "clerk").run
    approve_all(papp, run_id)
    report = send(papp, run_id)
    assert (report.sent, report.failed, report.remaining) == (4, 0, 0)
    assert report.by_channel == {"sms": 1, "email": 2, "letter": 1}
    shown = runs.show_run(papp, run_id)
    assert shown["status"] == "completed"
    assert {k: v for k, v in shown["counts"].items() if v} == {"delivered": 1, "sent": 3, "skipped": 1}
    # E-mail: real SMTP, Chinese subject and body intact, plain text with an HTML alternative.
    assert sorted(m["To"].addresses[0].addr_spec for m in smtp.messages) == [
        "wang2@example.com",
        "wang5@example.com",
    ]
    msg = next(m for m in smtp.messages if "wang2" in str(m["To"]))
    assert msg["Subject"] == "2026年耕地地力保护补贴发放公示（东村）"
    plain = body_text(msg, "plain")
    assert "王二您好" in plain and "3 亩" in plain and "¥110.00" in plain and "¥330.00" in plain
    assert "<b>3</b>" in body_text(msg, "html")
    # SMS to the outbox, one file per message.
    files = list((tmp_path / "outbox" / f"run-{run_id}").glob("*.sms.txt"))
    assert len(files) == 1
    text = files[0].read_text(encoding="utf-8")
    assert "To: +8613800000001" in text and "王一您好" in text and "¥605.00" in text and "回TD退订" in text
    # Letters: one printable HTML per run with one page per resident, and a roster.
    html = (tmp_path / "letters" / f"run-{run_id}.html").read_text(encoding="utf-8")
    assert html.count('<section class="letter"') == 1 and "王三" in html and "东村3号" in html
    roster = list(csv.reader((tmp_path / "letters" / f"run-{run_id}-roster.csv").open(encoding="utf-8-sig")))
    assert roster[0][:4] == ["序号", "投递编号", "居民编号", "姓名"] and roster[1][2:4] == ["F03", "王三"]
    # Sending again sends nothing.
    assert send(papp, run_id).sent == 0 and len(smtp.messages) == 2


def test_every_transition_is_audited_and_chain_verifies(papp: App) -> None:
    run_id = runs.create_run(papp, rule(papp), ON, "clerk").run
    approve_all(papp, run_id)
    send(papp, run_id)
    with papp.engine.connect() as conn:
        actions = [
            r.action for r in conn.execute(sa.select(audit_events.c.action).order_by(audit_events.c.seq))
        ]
        assert audit.verify(conn).ok
        ids = set(conn.execute(sa.select(deliveries.c.id).where(deliveries.c.status != "skipped")).scalars())
        subjects = [
            r.subject
            for r in conn.execute(
                sa.select(audit_events.c.subject).where(audit_events.c.action == "delivery.status")
            )
        ]
    assert actions[:4] == ["residents.import", "run.created", "run.approved", "run.approved"]
    assert actions[-1] == "run.completed"
    assert sorted(subjects) == sorted([f"delivery:{i}" for i in ids] * 2)  # pending->sending, sending->final


def test_recreated_run_does_not_notify_twice(papp: App, smtp: SmtpServer) -> None:
    first = runs.create_run(papp, rule(papp), ON, "clerk").run
    approve_all(papp, first)
    send(papp, first)
    second = runs.create_run(papp, rule(papp), ON, "clerk")
    d = by_resident(papp, second.run)
    assert all(v.status == "skipped" for v in d.values())
    assert d["F01"].reason == f"already notified in run {first}"
    approve_all(papp, second.run)
    assert send(papp, second.run).sent == 0 and len(smtp.messages) == 2


def test_cancelled_run_sends_nothing_and_frees_the_notice(papp: App) -> None:
    run_id = runs.create_run(papp, rule(papp), ON, "clerk").run
    assert runs.cancel_run(papp, run_id, "clerk")["skipped"] == 4
    with pytest.raises(StateError):
        runs.approve_run(papp, run_id, "reviewer1")
    again = runs.create_run(papp, rule(papp), ON, "clerk")
    assert sum(1 for v in by_resident(papp, again.run).values() if v.status == "pending") == 4


def test_a_batch_skipped_whole_is_passed_over(papp: App) -> None:
    """The first batch is all opted out: the dispatcher goes on to the next one (it once claimed
    it again inside its own open transaction, which on SQLite waited on its own lock)."""
    papp.config.raw["sending"]["batch_size"] = 1
    run_id = runs.create_run(papp, rule(papp), ON, "clerk").run
    approve_all(papp, run_id)
    with papp.engine.begin() as conn:
        conn.execute(opt_outs.insert().values(phone="+8613800000001", source="test", created_at=NOON))
    started = time.monotonic()
    report = send(papp, run_id)
    assert (report.skipped, report.sent) == (1, 3) and time.monotonic() - started < 30


def test_gates_window_quiet_hours_opt_out(papp: App, tmp_path: Path) -> None:
    run_id = runs.create_run(papp, rule(papp), ON, "clerk").run
    approve_all(papp, run_id)
    with papp.engine.begin() as conn:
        conn.execute(opt_outs.insert().values(phone="+8613800000001", source="test", created_at=NOON))
    # Before the publication window opens nothing is sent.
    assert send(papp, run_id, now=datetime(2025, 12, 31, 4, tzinfo=timezone.utc)).sent == 0
    report = send(papp, run_id)
    d = by_resident(papp, run_id)
    assert (
        d["F01"].status == "skipped"
        and d["F01"].reason == "number opted out of SMS"
        and d["F01"].notice_key is None
    )
    assert report.skipped == 1 and report.sent == 3


def test_quiet_hours_hold_sms(tmp_path: Path, sqlite_url: str) -> None:
    cfg = write_config(tmp_path, sqlite_url)
    cfg.write_text(cfg.read_text().replace("enabled = false", "enabled = true"))
    app = App.open(cfg)
    import_residents(app, write_roster(tmp_path / "p.csv", PEOPLE))
    run_id = runs.create_run(app, rule(app), ON, "clerk").run
    approve_all(app, run_id)
    night = datetime(2026, 4, 1, 15, 30, tzinfo=timezone.utc)  # 23:30 in Asia/Shanghai
    report = send(app, run_id, now=night)
    assert report.by_channel.get("sms", 0) == 0 and report.remaining == 1
    assert send(app, run_id, now=NOON).by_channel == {"sms": 1}


def test_window_closed_skips_pending(papp: App) -> None:
    run_id = runs.create_run(papp, rule(papp), ON, "clerk").run
    approve_all(papp, run_id)
    report = send(papp, run_id, now=datetime(2028, 1, 2, 4, tzinfo=timezone.utc))
    assert report.sent == 0
    d = by_resident(papp, run_id)
    assert {v.status for v in d.values()} == {"skipped"}
    assert d["F01"].reason == "publication window ended on 2027-12-31"
    assert runs.show_run(papp, run_id)["status"] == "completed"


def test_transient_smtp_failure_is_retried(papp: App, smtp: SmtpServer) -> None:
    smtp.plan = ["451@RCPT"]
    run_id = runs.create_run(papp, rule(papp), ON, "clerk").run
    approve_all(papp, run_id)
    report = send(papp, run_id)
    assert report.retried == 1 and report.failed == 0 and report.remaining == 0
    assert len(smtp.messages) == 2
    d = by_resident(papp, run_id)
    assert sorted(v.attempts for k, v in d.items() if v.channel == "email") == [1, 2]


def test_restricted_item_is_never_run(papp: App, tmp_path: Path) -> None:
    path = tmp_path / "rules" / "farm-subsidy-2026.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("disclosure: public", "disclosure: restricted"),
        encoding="utf-8",
    )
    with pytest.raises(StateError, match="restricted"):
        runs.create_run(papp, rule(papp), ON, "clerk")


def test_records_drive_matching(papp: App, tmp_path: Path) -> None:
    with papp.engine.begin() as conn:
        conn.execute(
            papp.residents.update()
            .where(papp.residents.c.resident_id.in_(["F01", "F02"]))
            .values(f_house_grade="D", f_income_per_capita=5000)
        )
    (tmp_path / "g.csv").write_text("居民编号,补助类别,发放日期\nF01,危房改造,2025-06-01\n", encoding="utf-8")
    import_records(papp, "grants", tmp_path / "g.csv")
    created = runs.create_run(papp, rule(papp, "rural-housing-repair-2026"), ON, "clerk")
    assert set(by_resident(papp, created.run)) == {"F02"}


def test_preview_names_missing_data_and_explain_tells_why(papp: App, tmp_path: Path) -> None:
    from notifier.preview import explain, preview

    out = preview(papp, rule(papp), ON, sample=2).as_json()
    assert (out["match"], out["no_match"], out["review"]) == (5, 1, 1)
    assert out["review_conditions"] == [{"id": "has_land", "label": "有承包耕地", "missing": 1}]
    assert out["by_channel"] == {"sms": 1, "email": 2, "letter": 1, "none": 1}
    assert all("王" not in s["body"] or "王*" in s["body"] for s in out["samples"])
    why = explain(papp, rule(papp), "F06", ON).as_json()
    assert why["result"] == "no_match" and why["summary"] == "不符合条件：农村户籍。"
    assert why["conditions"][0]["text"] == "农村户籍：户籍类型城镇，要求为农村 — 不符合"
    review = explain(papp, rule(papp), "F07", ON).as_json()
    assert review["result"] == "review" and "有承包耕地" in review["summary"]
    (tmp_path / "g.csv").write_text(
        "居民编号,补助类别,发放日期\nF01,危房改造,2025-06-01\nF01,危房改造,2020-01-01\n", encoding="utf-8"
    )
    import_records(papp, "grants", tmp_path / "g.csv")
    housing = explain(papp, rule(papp, "rural-housing-repair-2026"), "F01", ON).as_json()
    funded = next(c for c in housing["conditions"] if c["id"] == "not_funded")
    assert funded["result"] == "fail" and funded["value"] == ["2025-06-01"]
    low = next(c for c in housing["conditions"] if c["id"] == "low_income")
    assert low["parameter"]["reference"] == "某县民发〔2025〕3号" and low["threshold"] == "14880"


def test_unreachable_channel_falls_back_once(papp: App, smtp: SmtpServer, tmp_path: Path) -> None:
    smtp.refuse = {"wang2@example.com"}
    run_id = runs.create_run(papp, rule(papp), ON, "clerk").run
    approve_all(papp, run_id)
    report = send(papp, run_id)
    assert (report.failed, report.by_channel) == (1, {"sms": 1, "email": 1, "letter": 2})
    with papp.engine.connect() as conn:
        rows = conn.execute(
            sa.select(deliveries).where(deliveries.c.resident_id == "F02").order_by(deliveries.c.id)
        ).all()
        fallback_events = conn.execute(
            sa.select(audit_events.c.payload).where(audit_events.c.action == "delivery.fallback")
        ).all()
    assert [(r.channel, r.status, r.error_code) for r in rows] == [
        ("email", "failed", "550"),
        ("letter", "sent", None),
    ]
    assert rows[1].fallback_of == rows[0].id and rows[1].recipient == "东村2号"
    assert len(fallback_events) == 1
    assert "王二" in (tmp_path / "letters" / f"run-{run_id}.html").read_text(encoding="utf-8")
    assert runs.show_run(papp, run_id)["status"] == "completed"
    assert send(papp, run_id).sent == 0  # nothing more, no second fallback


def test_letters_of_a_killed_send_are_assembled_by_the_next_one(tmp_path: Path) -> None:
    """Pages written by a process that died before assembling them become the run's printable
    file and roster when the next `send` opens the letter provider."""
    from notifier.channels.base import OutboundMessage, ProviderContext
    from notifier.channels.letter import LetterProvider
    from notifier.status import Channel

    async def killed() -> None:  # sends pages, never reaches close()
        p = LetterProvider("letter", {"dir": "letters"}, ProviderContext(tmp_path))
        for i, (name, village) in enumerate([("王二", "西村"), ("李一", "东村")], start=1):
            await p.send(
                OutboundMessage(
                    delivery_id=i,
                    run_id=7,
                    channel=Channel.LETTER,
                    resident_id=f"R{i}",
                    recipient=f"{village}{i}号",
                    recipient_name=name,
                    body=f"<p>{name}</p>",
                    subject=None,
                    html=None,
                    segments=None,
                    meta={"township": "城关镇", "village": village, "title": "通知"},
                )
            )

    asyncio.run(killed())
    assert not (tmp_path / "letters" / "run-7.html").exists()
    asyncio.run(LetterProvider("letter", {"dir": "letters"}, ProviderContext(tmp_path)).open())
    page = (tmp_path / "letters" / "run-7.html").read_text(encoding="utf-8")
    assert page.index("李一") < page.index("王二")  # sorted by village: 东村 before 西村
    roster = list(csv.reader((tmp_path / "letters" / "run-7-roster.csv").open(encoding="utf-8-sig")))
    assert [r[3] for r in roster[1:]] == ["李一", "王二"]
