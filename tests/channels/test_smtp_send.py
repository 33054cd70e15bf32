"""E-mail through `notifier send` on a real project, against the real SMTP server of tests/support:
Chinese subject, names and body arrive intact with the headers a mail client needs (From, To,
Subject encoded for a server without SMTPUTF8, a Message-ID that is the delivery's provider id,
Date); a 4xx answer is retried until it goes through, a 5xx answer is final and falls back."""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from notifier.app import App
from notifier.storage.schema import deliveries
from tests.support.campaign import ON, PEOPLE, open_window, smtp_project, write_roster
from tests.support.cli import cli
from tests.support.smtp_server import Mail, SmtpServer

SUBJECT = "2026年耕地地力保护补贴发放公示（东村）"


@pytest.fixture
def county(tmp_path: Path, sqlite_url: str, smtp: SmtpServer) -> Path:
    """The pipeline's village with e-mail through the SMTP server, its residents imported."""
    cfg = smtp_project(tmp_path, sqlite_url, smtp.port)
    open_window(tmp_path)
    write_roster(tmp_path / "p.csv", PEOPLE)
    return cfg


def approved(capsys: pytest.CaptureFixture[str], cfg: Path) -> int:
    """Residents imported, a run created and approved at both levels, all through the CLI."""
    assert cli(capsys, cfg, "residents", "import", str(cfg.parent / "p.csv"), "--json")[0] == 0
    code, created, err = cli(
        capsys, cfg, "runs", "create", "farm-subsidy-2026", "--on", ON.isoformat(), "--by", "clerk", "--json"
    )
    assert code == 0, err
    for who in ("reviewer1", "reviewer2"):
        assert cli(capsys, cfg, "runs", "approve", str(created["run"]), "--by", who, "--json")[0] == 0
    return int(created["run"])


def send(capsys: pytest.CaptureFixture[str], cfg: Path) -> dict[str, Any]:
    code, report, err = cli(capsys, cfg, "send", "--until-idle", "--json")
    assert code == 0 and "Traceback" not in err, err
    assert isinstance(report, dict)
    return report


def deliveries_of(cfg: Path, run_id: int, channel: str) -> list[Any]:
    """The run's deliveries on one channel, in order, read as another process would."""
    app = App.open(cfg)
    try:
        with app.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(deliveries)
                    .where(deliveries.c.run_id == run_id, deliveries.c.channel == channel)
                    .order_by(deliveries.c.id)
                )
            )
    finally:
        app.close()


def to_wang2(smtp: SmtpServer) -> Mail:
    [mail] = [m for m in smtp.received if m.recipients == ("wang2@example.com",)]
    return mail


@pytest.fixture
def mailed(county: Path, smtp: SmtpServer, capsys: pytest.CaptureFixture[str]) -> tuple[Path, int]:
    run_id = approved(capsys, county)
    report = send(capsys, county)
    assert (report["sent"], report["failed"], report["by_channel"]["email"]) == (4, 0, 2)
    return county, run_id


def test_chinese_mail_arrives_intact_with_encoded_headers(mailed: tuple[Path, int], smtp: SmtpServer) -> None:
    cfg, run_id = mailed
    mail = to_wang2(smtp)
    assert mail.sender == "notice@example.gov.cn"  # the envelope sender is the bare address
    head = mail.raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()  # the server offers no SMTPUTF8: every header is MIME-encoded
    assert re.search(rb"^Subject: =\?utf-8\?[bq]\?", head, re.I | re.M)
    msg = mail.message
    assert msg["Subject"] == SUBJECT
    [sender] = msg["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("县民政局", "notice@example.gov.cn")
    [to] = msg["To"].addresses
    assert (to.display_name, to.addr_spec) == ("王二", "wang2@example.com")
    plain = msg.get_body(("plain",))
    assert plain is not None and plain.get_content_charset() == "utf-8"
    assert "王二您好" in plain.get_content() and "¥330.00" in plain.get_content()
    # The Message-ID names the county's domain, is unique, and is what the delivery row records.
    ids = [m.message["Message-ID"] for m in smtp.received]
    assert all(re.fullmatch(r"<[^<>@\s]+@example\.gov\.cn>", i) for i in ids) and len(set(ids)) == 2
    rows = {r.resident_id: r for r in deliveries_of(cfg, run_id, "email")}
    assert rows["F02"].provider_message_id == msg["Message-ID"]
    assert {r.status for r in rows.values()} == {"sent"}


def test_mail_carries_a_date(mailed: tuple[Path, int], smtp: SmtpServer) -> None:
    date = to_wang2(smtp).message["Date"]
    assert date is not None and parsedate_to_datetime(str(date)).tzinfo is not None


@pytest.mark.parametrize("fault", ["451@RCPT", "421@MAIL", "451@END"])
def test_a_4xx_answer_is_retried_and_the_mail_goes_out_once(
    county: Path, smtp: SmtpServer, capsys: pytest.CaptureFixture[str], fault: str
) -> None:
    run_id = approved(capsys, county)
    smtp.plan = [fault]
    report = send(capsys, county)
    assert (report["retried"], report["failed"], report["remaining"]) == (1, 0, 0)
    assert report["by_channel"] == {"sms": 1, "email": 2, "letter": 1}
    assert smtp.plan == [] and sorted(m.recipients for m in smtp.received) == [
        ("wang2@example.com",),
        ("wang5@example.com",),
    ]
    rows = deliveries_of(county, run_id, "email")
    assert {r.status for r in rows} == {"sent"}
    assert sorted(r.attempts for r in rows) == [1, 2]
    assert send(capsys, county)["sent"] == 0 and len(smtp.received) == 2  # nothing goes out twice


@pytest.mark.parametrize(("fault", "code"), [("550@RCPT", "550"), ("554@END", "554")])
def test_a_5xx_answer_is_final_and_the_letter_goes_instead(
    county: Path, smtp: SmtpServer, capsys: pytest.CaptureFixture[str], fault: str, code: str
) -> None:
    run_id = approved(capsys, county)
    smtp.plan = [fault]
    report = send(capsys, county)
    assert (report["retried"], report["failed"], report["remaining"]) == (0, 1, 0)
    assert report["by_channel"] == {"sms": 1, "email": 1, "letter": 2}
    [failed] = [r for r in deliveries_of(county, run_id, "email") if r.status == "failed"]
    assert (failed.attempts, failed.error_code) == (1, code)
    assert len(smtp.received) == 1 and failed.recipient not in smtp.received[0].recipients
    letters = [r for r in deliveries_of(county, run_id, "letter") if r.fallback_of == failed.id]
    assert [(r.channel, r.status) for r in letters] == [("letter", "sent")]
    assert send(capsys, county)["sent"] == 0 and len(smtp.received) == 1  # never tried again
