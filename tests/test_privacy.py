"""No personal data or secrets in errors and logs: database errors provoked for real through the
CLI, database URLs with passwords, the official Twilio client at DEBUG, masked audit exports."""

from __future__ import annotations

import csv
import json
import logging
import operator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from notifier.app import App
from notifier.audit.export import ExportFilter, export_events
from notifier.audit.pseudonyms import subject_of_phone
from notifier.channels.twilio import TwilioProvider
from notifier.cli import main
from notifier.config import load_config
from notifier.errors import NotifierError
from notifier.optouts import add_opt_out
from tests.support.project import write_config
from tests.support.twilio_provider import BODY, TO, message, settings
from tests.support.twilio_server import TwilioServer

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(first17: str) -> str:
    return first17 + "10X98765432"[sum(map(operator.mul, map(int, first17), _WEIGHTS)) % 11]


# Two residents sharing a phone number: fine for the importer, refused by a UNIQUE index added below.
PEOPLE = [
    ["P01", "欧阳春花", "13912345678", "chunhua@example.com", "东村8号", id_number("11010119800307123")],
    ["P02", "司马秋月", "13912345678", "qiuyue@example.com", "东村9号", id_number("11010119850412456")],
]
SECRETS = [v for row in PEOPLE for v in row[1:]] + ["139 1234 5678", "1234 5678"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


def register(folder: Path) -> Path:
    path = folder / "people.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(
            [["居民编号", "姓名", "手机号码", "电子邮箱", "家庭住址", "身份证号"], *PEOPLE]
        )
    return path


def assert_nothing_personal(text: str) -> None:
    assert "Traceback" not in text
    for secret in SECRETS:
        assert secret not in text, secret


@pytest.mark.parametrize(
    "damage, says",
    [
        ("CREATE UNIQUE INDEX ix_one_phone ON residents (phone)", "unique"),  # IntegrityError
        (
            "ALTER TABLE residents DROP COLUMN address",
            "address",
        ),  # OperationalError (SQLite) / ProgrammingError
    ],
)
def test_database_errors_through_the_cli_show_no_personal_data(
    capsys: pytest.CaptureFixture[str], project: Path, damage: str, says: str
) -> None:
    App.open(project).close()  # the schema as the CLI makes it
    engine = sa.create_engine(load_config(project).database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(damage)
    engine.dispose()
    code, text = run(capsys, "--config", str(project), "residents", "import", str(register(project.parent)))
    assert code == 1 and "import failed and was rolled back" in text and says in text.lower(), text
    assert_nothing_personal(text)
    # --debug shows the traceback (that is what it is for), still without the bound parameters
    # (PostgreSQL's own DETAIL line may quote the conflicting value: --debug is for the operator)
    with pytest.raises(NotifierError) as info:
        main(["--config", str(project), "--debug", "residents", "import", str(register(project.parent))])
    cause = info.value.__cause__
    assert isinstance(
        cause, sa.exc.DBAPIError
    ) and "[SQL parameters hidden due to hide_parameters=True]" in str(cause)
    assert not any(secret in str(cause) for secret in (PEOPLE[0][1], PEOPLE[0][5]))


def test_a_bad_database_url_is_printed_without_its_password(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = write_config(tmp_path, "postgresql+nosuchdriver://clerk:S3cret-pw@db.example/notifier")
    code, text = run(capsys, "--config", str(cfg), "runs", "list")
    assert code == 1 and "postgresql+nosuchdriver://clerk:***@db.example/notifier" in text
    assert "S3cret-pw" not in text and "Traceback" not in text


def test_init_prints_the_database_url_masked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, pg_server: object
) -> None:
    url = pg_server.create_database("init_masked")  # type: ignore[attr-defined]
    with_password = url.replace("postgres@", "postgres:S3cret-pw@")  # the test server trusts local users
    write_config(tmp_path, with_password)
    code, text = run(capsys, "init", str(tmp_path), "--json")
    assert code == 0 and "S3cret-pw" not in text
    assert json.loads(text)["database"] == with_password.replace("S3cret-pw", "***")
    assert "S3cret-pw" not in repr(load_config(tmp_path / "notifier.toml"))


async def test_twilio_client_logs_no_phone_numbers_or_bodies(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with TwilioServer() as server:
        p = TwilioProvider("twilio", settings(server))
        try:
            await p.send(message())
            since = datetime.now(timezone.utc) - timedelta(minutes=5)
            assert await p.lookup(message(), since) is not None  # lists messages To=...
        finally:
            await p.close()
    logged = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert "twilio.async_http_client Twilio API GET /2010-04-01/Accounts/" in logged  # it did log, at DEBUG
    national = TO.removeprefix("+86")
    for secret in (TO, national, "%2B86" + national, BODY[:12], "王一"):
        assert secret not in logged, secret


def test_masked_export_masks_the_subject_column(app: App, tmp_path: Path) -> None:
    add_opt_out(app, "+8613912345678", source="sms reply 'TD'", actor="twilio")
    out = tmp_path / "events.csv"
    export_events(app, out, "csv", ExportFilter())
    rows = list(csv.reader(out.open(encoding="utf-8-sig")))
    [subject] = [r[4] for r in rows[1:] if r[3] == "optout.added"]
    assert subject.startswith("phone:139****5678#") and len(subject) == len("phone:139****5678#") + 24
    assert subject == subject_of_phone(app.engine, app.config, "+8613912345678")
    assert "13912345678" not in out.read_text(encoding="utf-8-sig")
